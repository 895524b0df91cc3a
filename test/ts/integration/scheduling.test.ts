/**
 * One worker trains and serves at once (python/softprompt_worker/serving/scheduler.py): an `embed` made
 * while a job trains is answered between the job's steps, not after the job; two jobs train side by side,
 * a third queues (with a `queued` event) until one ends; `sp.status()` lists them with their progress.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import type { TrainingEvent } from '../../../ts/src/jobs/events.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { trainAndServeExample } from '../../../examples/train-and-serve.js';
import { testWorkerOptions } from '../helpers.js';
import { root } from '../examples/run-example.js';

const model: TinyModelSpec = { tiny: 'gpt2', device: 'cpu' };
const ROWS = ['abc', 'hello', 'kite', 'moon'].map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));

describe('training and inference on one worker', () => {
  let sp: Softprompt;
  let dir: string;
  const job = (name: string, steps: number) =>
    promptTuning({
      model,
      numVirtualTokens: 2,
      data: { train: { rows: ROWS } },
      training: { steps, batchSize: 2, logEvery: 1, evalBaseline: false },
      runDir: join(dir, name),
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-scheduling-'));
    sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } }));
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers embed between training steps, lists jobs in status, and queues a third job', async () => {
    const first = sp.train(job('first', 100_000));
    const second = sp.train(job('second', 100_000));
    const firstEvents: TrainingEvent[] = [];
    const firstDone = (async () => {
      for await (const e of first.events()) firstEvents.push(e); // (leaving the loop early would cancel the job)
    })();
    await expect.poll(() => firstEvents.some((e) => e.type === 'step' && e.step >= 2), { timeout: 60_000 }).toBe(true);

    const embedded = await sp.embed({ model, texts: ['while training'] });
    expect(embedded.rows).toBe(1);
    const status = await sp.status();
    expect(status.maxTrainingJobs).toBe(2);
    const running = status.jobs.filter((j) => j.state === 'running').map((j) => j.runDir).sort();
    expect(running).toEqual([join(dir, 'first'), join(dir, 'second')]); // neither job waited for the embed
    expect(status.jobs.find((j) => j.runDir === join(dir, 'first'))).toMatchObject({ method: 'prompt_tuning', totalSteps: 100_000 });
    expect(status.models.map((m) => m.model['tiny'])).toEqual(['gpt2']); // one frozen model for all three
    expect(status.models[0]!.bytes).toBeGreaterThan(0);

    const third = sp.train(job('third', 2));
    const thirdEvents: TrainingEvent[] = [];
    const thirdDone = (async () => {
      for await (const e of third.events()) thirdEvents.push(e);
    })();
    await expect.poll(() => thirdEvents.length, { timeout: 30_000 }).toBeGreaterThan(0);
    expect(thirdEvents[0]).toMatchObject({ type: 'queued', position: 1, running: 2 });
    expect((await sp.status()).jobs.find((j) => j.runDir === join(dir, 'third'))?.state).toBe('queued');

    await first.cancel();
    await firstDone;
    expect((await first.result()).status).toBe('cancelled');
    await thirdDone;
    expect((await third.result()).status).toBe('completed');
    expect(thirdEvents.map((e) => e.type).slice(0, 3)).toEqual(['queued', 'data', 'started']);
    await second.cancel();
    expect((await second.result()).status).toBe('cancelled');
  }, 120_000);

  it('examples/train-and-serve.ts (the README snippet) embeds and reads the status while its job trains', async () => {
    const { rows, status, checkpoint } = await trainAndServeExample(sp, model, join(dir, 'example'), 60);
    expect(rows).toBe(1);
    expect(status.models).toHaveLength(1);
    expect(status.jobs.map((j) => [j.state, j.runDir])).toEqual([['running', join(dir, 'example', 'serve')]]);
    expect(status.queues.training).toBe(0);
    expect(checkpoint).toContain(join(dir, 'example', 'serve'));
    const source = readFileSync(join(root, 'examples', 'train-and-serve.ts'), 'utf8');
    const body = /\/\/ #region train-and-serve\n([\s\S]*?)\n\s*\/\/ #endregion/.exec(source)![1]!;
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toContain(body.split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n'));
  }, 120_000);
});
