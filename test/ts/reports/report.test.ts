/**
 * The run report end to end: a real 8-step prompt-tuning run on a tiny GPT-2 through `sp.train`
 * (which writes the report), then the page opened from file:// in Debian's headless Chromium: no
 * console or page errors, no network, charts drawn (canvas pixels read back, series colours found),
 * the run's numbers in the DOM. A copy of the run with hostile strings in job.json and events.jsonl
 * and a baseline evaluation checks escaping and the baseline comparison. ~15 s wall (the worker's
 * start and the run ~10 s, Chromium ~1 s).
 *
 * To look at the result: SOFTPROMPT_REPORT_KEEP=/some/folder keeps the run folders (with their
 * report.html) and a full-page screenshot.png there.
 */
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import type { Capabilities } from '../../../ts/src/core/capabilities.js';
import type { TrainingResult } from '../../../ts/src/jobs/events.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { fmtNumber } from '../../../ts/src/reports/html.js';
import { writeRunReport } from '../../../ts/src/reports/write.js';
import { testWorkerOptions } from '../helpers.js';
import { type Chromium, canvasInk, launchChromium, openPage } from './chromium.js';

const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy'];
const ROWS = Array.from({ length: 32 }, (_, i) => WORDS[i % WORDS.length]!).map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));
const TRAIN_LOSS_BLUE = '#2563eb'; // charts.ts PALETTE[0]
const EVAL_RED = '#dc2626';
const KEEP = process.env['SOFTPROMPT_REPORT_KEEP'];
const HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

describe('run report in headless Chromium', () => {
  let dir: string;
  let runDir: string;
  let result: TrainingResult;
  let capabilities: Capabilities;
  let browser: Chromium;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-report-'));
    runDir = join(dir, 'run');
    const sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } }));
    try {
      capabilities = sp.capabilities;
      const spec = promptTuning({
        model: { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' },
        numVirtualTokens: 4,
        data: { train: { rows: ROWS }, evalFraction: 0.25 },
        training: { steps: 8, batchSize: 4, logEvery: 1, evalEvery: 3, lr: 0.1, warmupSteps: 2, schedule: 'linear' },
        runDir,
      });
      result = await sp.train(spec).result();
    } finally {
      await sp.close();
    }
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    if (dir && KEEP) cpSync(dir, KEEP, { recursive: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sp.train writes report.html (and the environment) and returns its path', () => {
    expect(result.status).toBe('completed');
    expect(result.report).toBe(join(runDir, 'report.html'));
    expect(existsSync(result.report!)).toBe(true);
    expect(JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8'))).toMatchObject({ torch: capabilities.torch, python: capabilities.python });
    const html = readFileSync(result.report!, 'utf8');
    expect(html).not.toMatch(/\s(src|href)\s*=/i); // self-contained: nothing to fetch
  });

  it('opens from file:// with no errors, draws every chart and shows the run\'s numbers', async () => {
    const { page, problems } = await openPage(browser, pathToFileURL(result.report!).href);
    await page.waitForSelector('body[data-charts-drawn]');
    if (KEEP) await page.screenshot({ path: join(KEEP, 'screenshot.png'), fullPage: true });
    if (KEEP) await page.screenshot({ path: join(KEEP, 'screenshot-top.png') });
    expect(problems).toEqual([]);
    expect(await page.getAttribute('body', 'data-charts-drawn')).toBe('5');

    const ink = await canvasInk(page, [TRAIN_LOSS_BLUE, EVAL_RED]);
    expect(ink.map((c) => c.id)).toEqual(['chart-loss', 'chart-lr', 'chart-metrics', 'chart-grad-norm', 'chart-throughput']);
    for (const canvas of ink) {
      expect(canvas.width).toBeGreaterThan(300);
      expect(canvas.painted).toBeGreaterThan(500); // axes, grid, ticks and a line, not a blank canvas
      expect(canvas.colours).toBeGreaterThan(3);
    }
    expect(ink[0]!.found).toEqual({ [TRAIN_LOSS_BLUE]: true, [EVAL_RED]: true }); // both loss lines drawn

    const text = (field: string) => page.textContent(`[data-field="${field}"]`);
    expect(await text('status')).toBe('completed');
    expect(await text('steps')).toBe('8 / 8');
    expect(await text('final-loss')).toBe(fmtNumber(result.summary.finalLoss));
    expect(await text('eval-token_accuracy')).toBe(fmtNumber(result.summary.metrics['token_accuracy']));
    const env = await page.textContent('[data-section="environment"]');
    expect(env).toContain('cpu');
    expect(env).toContain(capabilities.torch!);
    expect(env).toContain(capabilities.transformers!);
    const timings = await page.textContent('[data-section="timings"]');
    expect(timings).toMatch(/Training loop \(evaluations included\)\s*[\d.]+ (ms|s)/);
    expect(timings).toMatch(/Worker start-up \(before the job\)\s*[\d.]+ (ms|s)/); // measured by the SDK
    expect(timings).toMatch(/In all \(worker start-up included\)\s*[\d.]+ (ms|s)/);
    expect(await page.textContent('[data-section="checkpoints"]')).toContain('step-00000008.pb');
    // Model selection (training.selectBy 'auto': the held-out loss for generation): the best evaluation is marked.
    expect(result.best).not.toBeNull();
    expect(await text('best')).toBe(`${result.best!.step} (loss ${fmtNumber(result.best!.value)})`);
    expect(await page.textContent('[data-section="checkpoints"]')).toContain('best.pb');
    expect(await page.textContent('[data-section="selection"]')).toContain(result.summary.selection!.message);
    const config = await page.textContent('[data-section="config"]');
    expect(config).toContain('prompt_tuning');
    expect(config).toContain('training.batchSize'); // the user's names, not the wire's batch_size
    expect(config).toContain('overrides.initializer_range'); // a model's own config keys stay as they are
    await page.close();
  });

  it('escapes hostile strings from job.json and events, and compares the tuned prompt with its baseline', async () => {
    const copy = join(dir, 'hostile');
    cpSync(runDir, copy, { recursive: true });
    const job = JSON.parse(readFileSync(join(copy, 'job.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(copy, 'job.json'), JSON.stringify({ ...job, model: { name_or_path: HOSTILE }, task_options: { [HOSTILE]: HOSTILE } }));
    const final = result.summary.metrics;
    const baseline = { loss: final['loss']! + 1, token_accuracy: 0, [HOSTILE]: 0.5 };
    const lines = [
      { event: 'data', train_rows: 24, eval_rows: 8, skipped: 1, skipped_rows: [{ where: `rows[3]${HOSTILE}`, error: HOSTILE }] },
      { event: 'eval', step: 0, metrics: baseline },
      { event: 'eval', step: 8, metrics: { ...final, [HOSTILE]: 0.75 } },
    ];
    appendFileSync(join(copy, 'events.jsonl'), lines.map((l) => JSON.stringify({ time: 1e9, ...l })).join('\n') + '\n{"event": "step", "step"'); // + a line cut short
    const report = await writeRunReport(copy);

    const { page, problems } = await openPage(browser, pathToFileURL(report).href);
    await page.waitForSelector('body[data-charts-drawn]');
    expect(problems).toEqual([]);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(3); // data block, uPlot, chart script
    expect(await page.textContent('h1')).toContain(HOSTILE); // shown as text
    expect(await page.textContent('[data-section="skipped"]')).toContain(HOSTILE);

    const row = (metric: string) => page.locator(`[data-section="baseline"] tr[data-metric="${metric}"] td`).allTextContents();
    expect(await row('loss')).toEqual(['loss', fmtNumber(final['loss']! + 1), fmtNumber(final['loss']), '-1 (better)']);
    expect((await row('token_accuracy'))[0]).toBe('token_accuracy');
    expect(await page.locator('[data-section="baseline"] tbody tr').count()).toBe(2); // metrics in both
    const legend = await page.textContent('#chart-metrics');
    expect(legend).toContain('token_accuracy (baseline)');
    expect(await page.textContent('footer')).toContain('1 unreadable line(s) skipped');
    // The environment saved by sp.train is read back when none is given.
    expect(await page.textContent('[data-section="environment"]')).toContain(capabilities.torch!);
    await page.close();
  });
});
