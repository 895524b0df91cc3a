/**
 * Memory planning through the real worker: `sp.plan` for each method on a tiny Llama (the model is built
 * on the worker's meta device, so nothing is loaded), and `softprompt plan` from a job file with its
 * exit codes (0 fits, 4 does not, 2 a bad --gpu).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { RemoteError } from '../../../ts/src/core/errors.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { passageTuning } from '../../../ts/src/jobs/passage-tuning.js';
import { prefixTuning } from '../../../ts/src/jobs/prefix-tuning.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';
import { buildCli, runCli } from '../cli/run-cli.js';
import { testWorkerOptions } from '../helpers.js';

const model: TinyModelSpec = { tiny: 'llama' };
const GIB = 2 ** 30;
const PAIRS = [{ query: 'q', positive: 'p', negatives: ['n1', 'n2'] }];

describe('memory planning with the real worker', () => {
  let sp: Softprompt;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-plan-'));
    sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } }));
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('plans each method: a verdict against --gpu, parts that sum to the peak, the longest sequence', async () => {
    const specs = [
      promptTuning({ model, numVirtualTokens: 8, data: { train: { rows: [{ input: 'a', target: 'b' }] } }, training: { batchSize: 4, maxLength: 128 }, runDir: dir }),
      prefixTuning({ model, numVirtualTokens: 8, data: { train: { rows: [{ input: 'a', target: 'b' }] } }, training: { batchSize: 4, maxLength: 128 }, runDir: dir }),
      suffixTuning({ model, data: { train: { rows: PAIRS } }, training: { batchSize: 4, maxLength: 128 }, runDir: dir }),
      passageTuning({ model, data: { train: { rows: PAIRS } }, training: { batchSize: 2 }, runDir: dir }),
    ];
    for (const spec of specs) {
      const p = await sp.plan(spec, { gpu: '24GiB' });
      expect(p.fits, spec.method).toBe(true);
      expect(p.budgetBytes).toBe(24 * GIB);
      expect(p.budgetSource).toBe('given');
      expect(p.device).toBe('cuda');
      expect(Object.values(p.breakdown).reduce((a, b) => a + b, 0)).toBe(p.peakBytes);
      expect(p.settings.method).toBe(spec.method);
      expect(p.settings.trainableParams).toBeGreaterThan(0);
      expect(p.longestSeq).toBeGreaterThan(0);
      expect(p.suggestions).toEqual([]);
    }
    expect((await sp.plan(specs[2]!)).settings.negatives).toBe(2); // from the inline rows
  });

  it('a job over budget gets suggestions; a CPU plan without a budget gives no verdict', async () => {
    const spec = promptTuning({ model, numVirtualTokens: 8, data: { train: { rows: [{ input: 'a', target: 'b' }] } }, training: { batchSize: 64, maxLength: 200 }, runDir: dir });
    const roomy = await sp.plan(spec, { gpu: '100GiB' });
    const tight = await sp.plan(spec, { gpu: roomy.peakBytes - roomy.breakdown.activations / 2 });
    expect(tight.fits).toBe(false);
    expect(tight.suggestions[0]!.fits).toBe(true);
    expect(tight.suggestions.some((s) => 'training.gradient_checkpointing' in s.change)).toBe(true);
    const cpu = await sp.plan(spec, { device: 'cpu' });
    expect(cpu.settings.computeDtype).toBe('f32');
    expect(cpu.breakdown.cudaReserve).toBeUndefined();
    if (!sp.capabilities.cuda) expect(cpu.fits).toBeUndefined();
  });

  it('an encoder-decoder model is refused with the reason', async () => {
    const spec = promptTuning({ model: { tiny: 't5' }, data: { train: { rows: [{ input: 'a', target: 'b' }] } }, runDir: dir });
    await expect(sp.plan(spec, { gpu: '24GiB' })).rejects.toSatisfy((e) => e instanceof RemoteError && /encoder-decoder/.test(e.message));
  });

  describe('softprompt plan', () => {
    let cli: string;
    let dispose: () => void;

    beforeAll(async () => {
      writeFileSync(join(dir, 'job.yaml'), [
        'method: prompt_tuning', `model: ${JSON.stringify(model)}`, 'numVirtualTokens: 8',
        'data: { train: { path: rows.jsonl } }', 'training: { batchSize: 8, maxLength: 200 }', 'runDir: run', '',
      ].join('\n'));
      process.env['SOFTPROMPT_CACHE_DIR'] = join(dir, 'cache');
      ({ entry: cli, dispose } = await buildCli());
    });
    afterAll(async () => {
      if (cli) await runCli(cli, ['worker', 'stop']);
      delete process.env['SOFTPROMPT_CACHE_DIR'];
      dispose?.();
    });

    it('exits 0 when the job fits (JSON), 4 when it does not (1 GiB: less than the CUDA reserve alone), 2 for a bad --gpu', async () => {
      const job = join(dir, 'job.yaml');
      const fits = await runCli(cli, ['plan', job, '--gpu', '24GiB', '--json']);
      expect(fits.code, fits.stderr).toBe(0);
      const parsed = JSON.parse(fits.stdout) as { fits: boolean; peakBytes: number; budgetBytes: number };
      expect(parsed.fits).toBe(true);
      expect(parsed.budgetBytes).toBe(24 * GIB);
      const over = await runCli(cli, ['plan', job, '--gpu', '1GiB']);
      expect(over.code, over.stderr).toBe(4);
      expect(over.stdout).toContain('does not fit');
      expect(over.stdout).toMatch(/estimated peak\s+1\.\d GiB/);
      const bad = await runCli(cli, ['plan', job, '--gpu', 'huge']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--gpu: expected a size');
    }, 60_000);
  });
});
