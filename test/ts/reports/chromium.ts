/**
 * Debian's headless Chromium, driven by playwright-core (which downloads no browser). `make test-ts`
 * installs it when missing (Makefile, target `chromium`); without it these tests fail with that hint
 * rather than skip, so CI always runs them.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps calling home, which the sandboxed network
// refuses over and over.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Chromium {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Chromium with a fresh, throw-away profile. */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run \`make test-ts\` (it installs chromium) or \`apt-get install -y chromium\``);
  const profile = mkdtempSync(join(tmpdir(), 'softprompt-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1200, height: 900 },
    offline: true,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `url` in a new page, collecting console errors, page errors and failed requests. */
export async function openPage(browser: Chromium, url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console.${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
  page.on('request', (request) => {
    if (!request.url().startsWith('file:')) problems.push(`network request: ${request.url()}`);
  });
  await page.goto(url);
  return { page, problems };
}

/** Per chart canvas: size, painted pixels, distinct colours, and whether each wanted colour appears. */
export interface CanvasInk {
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly painted: number;
  readonly colours: number;
  readonly found: Record<string, boolean>;
}

/**
 * Reads every chart canvas back with getImageData. `colours` are `#rrggbb` strings looked for per
 * canvas (a series' stroke, within a small tolerance for anti-aliasing).
 */
export async function canvasInk(page: Page, colours: readonly string[]): Promise<CanvasInk[]> {
  // A string, so the test tsconfig needs no DOM types.
  return page.evaluate(`(() => {
    const wanted = ${JSON.stringify(colours)}.map((h) => [h, parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]);
    return [...document.querySelectorAll('.chart')].map((box) => {
      const canvas = box.querySelector('canvas');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const seen = new Set();
      const found = Object.fromEntries(wanted.map(([h]) => [h, false]));
      let painted = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        painted++;
        seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        for (const [h, r, g, b] of wanted) {
          if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 24) found[h] = true;
        }
      }
      return { id: box.id, width: canvas.width, height: canvas.height, painted, colours: seen.size, found };
    });
  })()`);
}
