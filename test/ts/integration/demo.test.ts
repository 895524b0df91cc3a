/**
 * `make demo`'s code path, in its quick mode (`demo.js --quick`, 2 steps on 5 held-out rows): the
 * embedded SmolLM2 loads, a prompt-tuning job runs on the Debian data, the baseline and tuned columns
 * are printed and the report is written. The demo is run as users run it, as a child process; its
 * source is bundled with esbuild like the CLI tests do (run-cli.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('the demo (quick mode)', () => {
  let dir: string;
  let runs: string;
  beforeAll(async () => {
    dir = join(root, 'node_modules', '.cache', 'softprompt-demo-test', `${process.pid}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    runs = mkdtempSync(join(tmpdir(), 'softprompt-demo-'));
    await build({
      entryPoints: [join(root, 'ts', 'src', 'demo.ts')],
      outfile: join(dir, 'demo.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'error',
    });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(runs, { recursive: true, force: true });
  });

  it('trains on the embedded model and prints baseline vs tuned and the report path', async () => {
    const child = spawn(process.execPath, [join(dir, 'demo.mjs'), '--quick'], {
      cwd: runs,
      env: { ...process.env, SOFTPROMPT_DEMO_STEPS: '2', SOFTPROMPT_DEMO_RUNS: runs },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);

    expect(stderr).toMatch(/training on (cpu|cuda\S*) \(\w+\): [\d,]+ trainable parameters \([\d.e-]+% of [\d,]+\)/);
    expect(stderr).toMatch(/eval @ step 0: accuracy \d+\.\d%/);
    expect(stderr).toMatch(/step 2\/2 .*loss \d/); // the live progress line (one per step here)
    expect(stdout).toMatch(/accuracy \(5 held-out rows, chance 20%\) +\d+\.\d% +\d+\.\d%/);
    expect(stdout).toMatch(/^completed: 2 steps/m);
    const report = /^report: +(\S+)$/m.exec(stdout)?.[1];
    expect(report).toMatch(/demo-[^/]+\/report\.html$/);
    expect(existsSync(join(runs, report!))).toBe(true);
  }, 240_000);
});
