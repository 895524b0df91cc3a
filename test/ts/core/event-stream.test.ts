import { describe, expect, it, vi } from 'vitest';
import { AbortError, SoftpromptError } from '../../../ts/src/core/errors.js';
import { EventStream, type StreamController } from '../../../ts/src/core/event-stream.js';

function make<T = number, R = string>() {
  let ctl!: StreamController<T, R>;
  const onCancel = vi.fn();
  const stream = new EventStream<T, R>((c) => (ctl = c), onCancel);
  return { stream, ctl, onCancel };
}

describe('EventStream', () => {
  it('yields buffered and later events, then resolves result()', async () => {
    const { stream, ctl } = make();
    ctl.event(1);
    setTimeout(() => (ctl.event(2), ctl.end('done')), 5);
    const seen: number[] = [];
    for await (const e of stream) seen.push(e);
    expect(seen).toEqual([1, 2]);
    await expect(stream.result()).resolves.toBe('done');
  });

  it('is consumed once', async () => {
    const { stream, ctl } = make();
    ctl.end('x');
    for await (const _ of stream) void _;
    expect(() => stream[Symbol.asyncIterator]()).toThrow(SoftpromptError);
  });

  it('result() without iterating drops events and consumes the stream', async () => {
    const { stream, ctl } = make();
    ctl.event(1);
    const result = stream.result();
    ctl.event(2);
    ctl.end('r');
    await expect(result).resolves.toBe('r');
    expect(() => stream[Symbol.asyncIterator]()).toThrow(/only once/);
  });

  it('throws the typed error after the buffered events, and result() rejects with it', async () => {
    const { stream, ctl } = make();
    const err = new AbortError('stop');
    ctl.event(1);
    ctl.fail(err);
    const seen: number[] = [];
    await expect(async () => {
      for await (const e of stream) seen.push(e);
    }).rejects.toBe(err);
    expect(seen).toEqual([1]);
    await expect(stream.result()).rejects.toBe(err);
  });

  it('break cancels the remote work once; result() settles as the remote ends', async () => {
    const { stream, ctl, onCancel } = make();
    ctl.event(1);
    ctl.event(2);
    for await (const e of stream) if (e === 1) break;
    expect(onCancel).toHaveBeenCalledTimes(1);
    stream.cancel();
    expect(onCancel).toHaveBeenCalledTimes(1);
    ctl.end('cancelled summary');
    await expect(stream.result()).resolves.toBe('cancelled summary');
  });

  it('does not cancel a stream that already ended', async () => {
    const { stream, ctl, onCancel } = make();
    ctl.event(1);
    ctl.end('r');
    for await (const _ of stream) break;
    expect(onCancel).not.toHaveBeenCalled();
  });

  it('cancel() keeps the loop running until the remote ends it', async () => {
    const { stream, ctl, onCancel } = make();
    const seen: number[] = [];
    setTimeout(() => ctl.event(1), 1);
    for await (const e of stream) {
      seen.push(e);
      stream.cancel();
      setTimeout(() => (ctl.event(2), ctl.end('r')), 1);
    }
    expect(onCancel).toHaveBeenCalledTimes(1);
    expect(seen).toEqual([1, 2]);
  });

  it('never reports an unconsumed failure as an unhandled rejection', async () => {
    const { ctl } = make();
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    ctl.fail(new AbortError());
    await new Promise((r) => setTimeout(r, 10));
    process.off('unhandledRejection', unhandled);
    expect(unhandled).not.toHaveBeenCalled();
  });
});
