/**
 * `distributed` start option: the options schema and the torchrun command (unit), then a real worker
 * group of two gloo processes on the CPU started by the SDK (integration, ~20 s wall, mostly starting
 * two Pythons): rows uploaded to rank 0 train on both ranks, events come once, a cancel reaches every
 * rank at the next log step, and close() ends every process. test/python/test_distributed.py checks the
 * numbers against one process.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { ValidationError } from '../../../ts/src/core/errors.js';
import type { TrainingEvent } from '../../../ts/src/jobs/events.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';
import { torchrunArgs, workerArgv } from '../../../ts/src/internal/worker-process.js';
import { quietLogger, testWorkerOptions } from '../helpers.js';

describe('distributed start option', () => {
  it('defaults to one node of auto-backend ranks and launches torchrun --standalone', () => {
    const { distributed } = parseStartOptions({ distributed: { nprocPerNode: 2 } });
    expect(distributed).toEqual({ nprocPerNode: 2, nnodes: 1, nodeRank: 0, backend: 'auto' });
    expect(workerArgv('py', distributed)).toEqual([
      'py', '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
      '-m', 'softprompt_worker', '--distributed', 'auto',
    ]);
    expect(workerArgv('py', undefined)).toEqual(['py', '-m', 'softprompt_worker']);
  });

  it('uses static rendezvous at rdzvEndpoint, with this machine as node 0', () => {
    const { distributed } = parseStartOptions({
      distributed: { nprocPerNode: 8, nnodes: 2, rdzvEndpoint: 'node0:29400', rdzvId: 'job7', backend: 'nccl' },
    });
    expect(torchrunArgs(distributed!)).toEqual([
      '--nnodes', '2', '--nproc-per-node', '8', '--node-rank', '0',
      '--rdzv-backend', 'static', '--rdzv-endpoint', 'node0:29400', '--rdzv-id', 'job7',
    ]);
  });

  it('rejects what cannot work, naming the field', () => {
    const bad = (distributed: unknown) => () => parseStartOptions({ distributed });
    expect(bad({ nprocPerNode: 0 })).toThrow(/options\.distributed\.nprocPerNode/);
    expect(bad({ nprocPerNode: 2, nnodes: 2 })).toThrow(/options\.distributed\.rdzvEndpoint: needed with nnodes 2/);
    expect(bad({ nprocPerNode: 2, nnodes: 2, nodeRank: 1, rdzvEndpoint: 'h:1' })).toThrow(/nodeRank: must be 0, got 1/);
    expect(bad({ nprocPerNode: 2, backend: 'mpi' })).toThrow(ValidationError);
    expect(bad({ nprocPerNode: 2, devices: 2 })).toThrow(ValidationError);
  });
});

const model: TinyModelSpec = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const ROWS = ['abc', 'hey', 'kit', 'moo', 'sun', 'tea', 'xyz', 'owl'].map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));

describe('a worker group of two gloo ranks (integration, ~20 s)', () => {
  let sp: Softprompt;
  let dir: string;
  const lines: string[] = [];
  const pidsInLog = (pattern: RegExp) => lines.flatMap((l) => (pattern.exec(l)?.[1] ? [Number(pattern.exec(l)![1])] : []));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-ddp-'));
    sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' }, distributed: { nprocPerNode: 2 }, logger: quietLogger(lines) }));
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains on both ranks with events from rank 0 only, cancels at a log step, and close() ends every rank', async () => {
    const job = (steps: number, run: string) =>
      promptTuning({ model, numVirtualTokens: 4, data: { train: { rows: ROWS } }, training: { steps, batchSize: 2, logEvery: 1, lr: 0.1 }, runDir: join(dir, run) });
    const training = sp.train(job(3, 'run'));
    const events: TrainingEvent[] = [];
    for await (const e of training.events()) events.push(e);
    const result = await training.result();
    expect(events.map((e) => e.type)).toEqual(['data', 'started', 'step', 'step', 'step', 'checkpoint', 'selection', 'done']);
    expect(events[1]).toMatchObject({ type: 'started', totalSteps: 3, device: 'cpu' });
    expect(events.filter((e) => e.type === 'step').map((e) => e.type === 'step' && e.loss > 0)).toEqual([true, true, true]);
    expect(result).toMatchObject({ status: 'completed', summary: { steps: 3 } });
    expect(existsSync(result.checkpoint)).toBe(true);
    const followers = pidsInLog(/\[rank1\/2\]: following rank 0 \(pid (\d+)\)/);
    expect(followers).toHaveLength(1);

    const long = sp.train(job(5000, 'cancel'));
    for await (const e of long.events()) if (e.type === 'step' && e.step >= 2) long.cancel();
    const cancelled = await long.result();
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.summary.steps).toBeGreaterThanOrEqual(2);
    expect(cancelled.summary.steps).toBeLessThan(10); // the next log step after the cancel, on both ranks
    expect(existsSync(cancelled.checkpoint)).toBe(true);

    const rank0 = sp.workerPid!;
    expect(rank0).toBeGreaterThan(0);
    await sp.close();
    for (const pid of [rank0, ...followers]) expect(() => process.kill(pid, 0)).toThrow();
    expect(lines.some((l) => l.includes('[rank1/2]: stopped by rank 0'))).toBe(true);
  });
});
