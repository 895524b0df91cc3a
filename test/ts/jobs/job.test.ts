import { describe, expect, it } from 'vitest';
import { AbortError, RemoteError, ValidationError } from '../../../ts/src/core/errors.js';
import { train } from '../../../ts/src/jobs/job.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';
import { FakeRpc, until } from './fake-rpc.js';

const rows = Array.from({ length: 40 }, (_, i) => ({ input: `q${i}`, target: 'a'.repeat(50) }));
const spec = promptTuning({ model: { tiny: 'gpt2' }, data: { train: { rows } }, runDir: '/tmp/r' });
const summary = { status: 'completed', steps: 4, total_steps: 4, final_loss: 1, metrics: {}, tokens: 9, epochs: 1, elapsed_s: 1, checkpoint: '/c.pb' };

describe('TrainingJob', () => {
  it('uploads rows in chunks, then streams typed events and the result, then frees the rows', async () => {
    const fake = new FakeRpc();
    const job = train(fake.rpc, spec, { uploadChunkBytes: 500 });
    await until(() => fake.train !== undefined);
    const trainBody = fake.sent.find((s) => s.op === 'train')!.body;
    expect(trainBody['data']).toEqual({ train: { dataset: 'ds-1' }, on_bad_row: 'fail' });
    expect(fake.ops().filter((o) => o === 'data_append').length).toBeGreaterThan(3);
    fake.event({ event: 'step', step: 1, loss: 2, lr: 0.1, grad_norm: 1, tokens_per_s: 5, memory_bytes: 7 });
    fake.event({ event: 'unknown_future_event' });
    fake.reply({ status: 'completed', summary, checkpoint: '/c.pb' });
    const events = [];
    for await (const e of job.events()) events.push(e);
    expect(events).toEqual([{ type: 'step', step: 1, loss: 2, lr: 0.1, gradNorm: 1, tokensPerS: 5, memoryBytes: 7 }]);
    await expect(job.result()).resolves.toMatchObject({ status: 'completed', checkpoint: '/c.pb' });
    await until(() => fake.ops().at(-1) === 'data_close');
  });

  it('cancel() during training asks the worker to stop; the result is the worker’s cancelled reply', async () => {
    const fake = new FakeRpc();
    const job = train(fake.rpc, spec);
    await until(() => fake.train !== undefined);
    job.cancel();
    expect(fake.train!.cancelled).toBe(1);
    fake.reply({ status: 'cancelled', summary: { ...summary, status: 'cancelled' }, checkpoint: '/c.pb' });
    await expect(job.result()).resolves.toMatchObject({ status: 'cancelled' });
  });

  it('an AbortSignal cancels like cancel()', async () => {
    const fake = new FakeRpc();
    const controller = new AbortController();
    const job = train(fake.rpc, spec, { signal: controller.signal });
    await until(() => fake.train !== undefined);
    controller.abort();
    expect(fake.train!.cancelled).toBe(1);
    fake.reply({ status: 'cancelled', summary: { ...summary, status: 'cancelled' }, checkpoint: '/c.pb' });
    await expect(job.result()).resolves.toMatchObject({ status: 'cancelled' });
  });

  it('leaving the event loop early cancels the job', async () => {
    const fake = new FakeRpc();
    const job = train(fake.rpc, spec);
    await until(() => fake.train !== undefined);
    fake.event({ event: 'checkpoint', step: 1, path: '/p' });
    for await (const e of job) {
      expect(e.type).toBe('checkpoint');
      break;
    }
    expect(fake.train!.cancelled).toBe(1);
  });

  it('cancelling before training started rejects with AbortError and sends no train', async () => {
    const fake = new FakeRpc();
    const job = train(fake.rpc, spec, { signal: AbortSignal.abort() });
    await expect(job.result()).rejects.toBeInstanceOf(AbortError);
    expect(fake.ops()).not.toContain('train');
  });

  it('cancelling during the upload stops it and closes the dataset', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fake = new FakeRpc(async (op) => {
      if (op === 'data_append') await gate;
      return op === 'data_open' ? { dataset: 'ds-1' } : ({} as WireMap);
    });
    const job = train(fake.rpc, spec, { uploadChunkBytes: 100 });
    await until(() => fake.ops().includes('data_append'));
    job.cancel();
    release();
    await expect(job.result()).rejects.toThrow(/cancelled while its rows were uploading/);
    expect(fake.ops()).not.toContain('train');
    expect(fake.ops().at(-1)).toBe('data_close');
  });

  it('worker errors arrive typed, from the loop and from result()', async () => {
    const fake = new FakeRpc();
    const job = train(fake.rpc, spec);
    await until(() => fake.train !== undefined);
    fake.train!.controller.fail(new RemoteError('invalid_argument', 'f.jsonl:2: target: expected a string', 'train'));
    await expect(job.result()).rejects.toBeInstanceOf(RemoteError);
  });

  it('refuses objects that no builder made, and bad options', () => {
    const fake = new FakeRpc();
    expect(() => train(fake.rpc, { ...spec })).toThrow(ValidationError);
    expect(() => train(fake.rpc, spec, { uploadChunkBytes: 0 })).toThrow('options.uploadChunkBytes: must be > 0');
    expect(fake.sent).toEqual([]);
  });
});
