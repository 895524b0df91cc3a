/** A stand-in for the internal Rpc that records what a method module sends and answers with canned replies. */
import { EventStream } from '../../../ts/src/core/event-stream.js';
import type { Tensor } from '../../../ts/src/core/tensor.js';
import type { Incoming, RequestOptions, Rpc, StreamOptions } from '../../../ts/src/internal/rpc.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';

export interface Sent {
  op: string;
  body: WireMap;
}

export interface FakeRpc {
  rpc: Rpc;
  sent: Sent[];
  /** What method modules registered with `rpc.onRestart`; call them to play a worker restart. */
  restartHooks: ((rpc: Rpc) => Promise<void>)[];
}

/** Replies to every call with `reply` (after `events`, for streams). */
export function fakeRpc(reply: { body: WireMap; tensors?: Record<string, Tensor> } = { body: {} }, events: WireMap[] = []): FakeRpc {
  const sent: Sent[] = [];
  const restartHooks: ((rpc: Rpc) => Promise<void>)[] = [];
  const final: Incoming = { body: reply.body, tensors: reply.tensors ?? {} };
  const rpc = {
    log: () => {},
    onRestart(replay: (rpc: Rpc) => Promise<void>): void {
      restartHooks.push(replay);
    },
    request<R>(op: string, body: WireMap, _t: unknown, options: RequestOptions<R> = {}): Promise<R> {
      sent.push({ op, body });
      return Promise.resolve(options.decode ? options.decode(final) : (final as R));
    },
    stream<E, F>(op: string, body: WireMap, _t: unknown, options: StreamOptions<E, F> = {}): EventStream<E, F> {
      sent.push({ op, body });
      return new EventStream<E, F>((c) => {
        queueMicrotask(() => {
          try {
            for (const e of events) c.event(options.decodeEvent ? options.decodeEvent({ body: e, tensors: {} }) : (e as E));
            c.end(options.decodeFinal ? options.decodeFinal(final) : (final as F));
          } catch (error) {
            c.fail(error as Error);
          }
        });
      });
    },
  };
  return { rpc: rpc as unknown as Rpc, sent, restartHooks };
}
