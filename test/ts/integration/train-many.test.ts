/**
 * `sp.trainMany` against the real worker on a tiny GPT-2: a sweep trained in shared passes gives each job the
 * losses it gets alone; a spec that cannot fuse fails the group with the reason; one job is cancelled alone;
 * a worker killed mid-sweep is restarted and every unfinished job resumes from its own last checkpoint.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { RemoteError } from '../../../ts/src/core/errors.js';
import type { TrainingEvent } from '../../../ts/src/jobs/events.js';
import type { TrainingJob } from '../../../ts/src/jobs/job.js';
import { prefixTuning } from '../../../ts/src/jobs/prefix-tuning.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { testWorkerOptions } from '../helpers.js';

const model: TinyModelSpec = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy'];
const ROWS = WORDS.map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));

async function drain(job: TrainingJob): Promise<TrainingEvent[]> {
  const events: TrainingEvent[] = [];
  for await (const e of job) events.push(e);
  return events;
}

const losses = (events: TrainingEvent[]) => events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(expected[i]!) + 1e-6));
}

describe('sp.trainMany with the real worker', () => {
  let sp: Softprompt;
  let dir: string;
  const sweep = (tag: string, training: Record<string, number> = {}) => [
    promptTuning({ model, numVirtualTokens: 2, data: { train: { rows: ROWS } }, training: { steps: 6, batchSize: 4, logEvery: 1, lr: 0.1, seed: 1, ...training }, runDir: join(dir, `${tag}-a`) }),
    promptTuning({ model, numVirtualTokens: 5, data: { train: { rows: ROWS } }, training: { steps: 4, batchSize: 3, logEvery: 1, lr: 0.03, seed: 2, ...training }, runDir: join(dir, `${tag}-b`) }),
    prefixTuning({ model, numVirtualTokens: 2, data: { train: { rows: ROWS } }, training: { steps: 6, batchSize: 4, logEvery: 1, lr: 0.01, seed: 3, ...training }, runDir: join(dir, `${tag}-c`) }),
  ];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-train-many-'));
    sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } }));
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains a sweep in shared passes: each job gets the losses it gets alone, its own result and report', async () => {
    const alone: { events: TrainingEvent[]; result: unknown }[] = [];
    for (const spec of sweep('alone')) {
      const job = sp.train(spec);
      alone.push({ events: await drain(job), result: await job.result() });
    }
    const jobs = sp.trainMany(sweep('fused'));
    const fused = await Promise.all(jobs.map(async (job) => ({ events: await drain(job), result: await job.result() })));
    fused.forEach(({ events, result }, i) => {
      expect(result.status).toBe('completed');
      expect(events.map((e) => e.type)[0]).toBe('data');
      expect(events.at(-1)?.type).toBe('done');
      expectClose(losses(events), losses(alone[i]!.events));
      expect(result.checkpoint).toBe(join(dir, `fused-${'abc'[i]}`, 'checkpoints', `step-0000000${[6, 4, 6][i]}.pb`));
      expect(result.report && existsSync(result.report)).toBe(true);
    });
  });

  it('refuses a spec that cannot fuse, naming it and why, before anything trains', async () => {
    const jobs = sp.trainMany([
      sweep('refused')[0]!,
      suffixTuning({ model, numVirtualTokens: 2, data: { train: { rows: [{ query: 'q', positive: 'p' }] } }, runDir: join(dir, 'refused-suffix') }),
    ]);
    for (const job of jobs) {
      const error = await job.result().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RemoteError);
      expect(error).toMatchObject({ code: 'invalid_argument' });
      expect((error as Error).message).toContain("jobs[1].method: 'suffix_tuning' cannot train fused");
    }
    expect(existsSync(join(dir, 'refused-a'))).toBe(false);
  });

  it('cancels one job alone; the others finish', async () => {
    const jobs = sp.trainMany(sweep('cancel'));
    const runs = jobs.map(async (job, i) => {
      for await (const e of job) if (i === 1 && e.type === 'step' && e.step === 1) job.cancel();
      return job.result();
    });
    const [a, b, c] = await Promise.all(runs);
    expect(a!.status).toBe('completed');
    expect(b!.status).toBe('cancelled');
    expect(b!.summary.steps).toBeLessThan(4);
    expect(existsSync(b!.checkpoint)).toBe(true); // usable, as a cancelled train's is
    expect(c!.status).toBe('completed');
  });

  it('resumes every unfinished job from its own checkpoint after the worker is killed', async () => {
    const reference = await Promise.all(sp.trainMany(sweep('reference', { checkpointEvery: 2 })).map((job) => job.result()));
    const jobs = sp.trainMany(sweep('crash', { checkpointEvery: 2 }));
    let killed = false;
    const events = await Promise.all(
      jobs.map(async (job, i) => {
        const seen: TrainingEvent[] = [];
        for await (const e of job) {
          seen.push(e);
          if (i === 0 && e.type === 'checkpoint' && e.step === 2 && !killed) {
            killed = true;
            process.kill(sp.workerPid!, 'SIGKILL');
          }
        }
        return seen;
      }),
    );
    const results = await Promise.all(jobs.map((job) => job.result()));
    results.forEach((result, i) => {
      const restarted = events[i]!.filter((e) => e.type === 'restarted');
      expect(restarted, `job ${i}`).toHaveLength(1);
      expect(result.status).toBe('completed');
      expect(Math.abs(result.summary.finalLoss! - reference[i]!.summary.finalLoss!)).toBeLessThanOrEqual(1e-5 * Math.abs(reference[i]!.summary.finalLoss!));
    });
  });
});
