/**
 * Rpc.request / Rpc.stream against the real worker with the TS test ops: events, results, remote
 * errors, cancellation by break / cancel() / AbortSignal, and timeouts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError, RemoteError, TimeoutError } from '../../../ts/src/core/errors.js';
import { toLogFunction } from '../../../ts/src/core/logger.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';
import { Rpc } from '../../../ts/src/internal/rpc.js';
import { Supervisor } from '../../../ts/src/internal/supervisor.js';
import { embed } from '../../../ts/src/inference/embed.js';
import { generate } from '../../../ts/src/inference/generate.js';
import { rerank } from '../../../ts/src/inference/rerank.js';
import { testWorkerOptions } from '../helpers.js';

describe('Rpc with the real worker', () => {
  let supervisor: Supervisor;
  let rpc: Rpc;
  beforeAll(async () => {
    const options = parseStartOptions(testWorkerOptions());
    supervisor = await Supervisor.start(options, {}, toLogFunction(options.logger));
    rpc = new Rpc(supervisor, undefined);
  });
  afterAll(async () => {
    await supervisor?.close();
  });

  const countBody = (n: number, delay_s = 0) => ({ n, delay_s });

  it('streams decoded events, then the final result', async () => {
    const stream = rpc.stream('test_count', countBody(5), undefined, {
      decodeEvent: (e) => e.body['i'] as number,
      decodeFinal: (r) => r.body['count'] as number,
    });
    const seen: number[] = [];
    for await (const i of stream) seen.push(i);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    await expect(stream.result()).resolves.toBe(5);
  });

  it('result() alone drops events', async () => {
    const stream = rpc.stream('test_count', countBody(3));
    await expect(stream.result()).resolves.toMatchObject({ body: { count: 3 } });
  });

  it('breaking out of the loop cancels the remote work', async () => {
    const stream = rpc.stream('test_count', countBody(1000, 0.01));
    for await (const _ of stream) break;
    await expect(stream.result()).rejects.toBeInstanceOf(AbortError);
    await expect(stream.result()).rejects.toMatchObject({ cause: { code: 'cancelled' } });
  });

  it('an AbortSignal ends the loop with AbortError at once', async () => {
    const controller = new AbortController();
    const stream = rpc.stream('test_count', countBody(1000, 0.01), undefined, { signal: controller.signal });
    const seen: unknown[] = [];
    await expect(async () => {
      for await (const e of stream) {
        seen.push(e);
        controller.abort();
      }
    }).rejects.toBeInstanceOf(AbortError);
    expect(seen).toHaveLength(1);
    // The worker is free again: the cancelled job no longer occupies the compute thread.
    await expect(rpc.request('test_sleep', { s: 0 }, undefined, { timeoutMs: 5000 })).resolves.toBeDefined();
  });

  it('a unary call past its deadline rejects with TimeoutError and is cancelled remotely', async () => {
    const started = performance.now();
    await expect(rpc.request('test_sleep', { s: 30 }, undefined, { timeoutMs: 200 })).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeLessThan(2000);
    await expect(rpc.request('test_sleep', { s: 0 }, undefined, { timeoutMs: 5000 })).resolves.toBeDefined();
  });

  it('requestTimeoutMs bounds the time between messages of a progress-path op, not its whole run', async () => {
    const timed = new Rpc(supervisor, 800);
    // 5 events 300 ms apart: 1.5 s in all, but never 800 ms without a message
    const stream = timed.stream('test_count', countBody(5, 0.3), undefined, { idleDeadline: true });
    await expect(stream.result()).resolves.toMatchObject({ body: { count: 5 } });
    await expect(timed.stream('test_sleep', { s: 30 }, undefined, { idleDeadline: true }).result()).rejects.toBeInstanceOf(TimeoutError);
    await expect(rpc.request('test_sleep', { s: 0 }, undefined, { timeoutMs: 5000 })).resolves.toBeDefined();
  });

  it.each([
    ['embed', (r: Rpc) => embed(r, { model: { embedded: 'minilm' }, texts: ['a'] })],
    ['rerank', (r: Rpc) => rerank(r, { model: { embedded: 'smollm2' }, query: 'q', passages: ['p'] })],
    ['generate', (r: Rpc) => generate(r, { model: { embedded: 'smollm2' }, inputs: ['a'], maxNewTokens: 1 }).result()],
  ])('%s on a stopped worker fails with TimeoutError after requestTimeoutMs', async (_, call) => {
    const pid = supervisor.current!.process.pid!;
    const timed = new Rpc(supervisor, 500);
    process.kill(pid, 'SIGSTOP');
    try {
      const started = performance.now();
      await expect(call(timed)).rejects.toBeInstanceOf(TimeoutError);
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('remote errors are RemoteErrors with the shared code', async () => {
    await expect(rpc.request('no_such_op', {})).rejects.toMatchObject({ name: 'RemoteError', code: 'unknown_op', op: 'no_such_op' });
    const err = await rpc.request('test_fail', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: 'internal' });
    expect((err as Error).message).toContain('boom');
  });

  it('a decode failure is a ProtocolError', async () => {
    await expect(
      rpc.request('ping', {}, undefined, {
        decode: () => {
          throw new Error('shape changed');
        },
      }),
    ).rejects.toMatchObject({ name: 'ProtocolError', message: expect.stringContaining('shape changed') });
  });

  it('keeps control ops responsive while a job runs', async () => {
    const job = rpc.request('test_sleep', { s: 1 });
    const started = performance.now();
    await rpc.request('ping', {});
    expect(performance.now() - started).toBeLessThan(500);
    await job;
  });
});
