/** A stand-in for the internal Rpc: records requests, answers them from a handler, drives one stream. */
import { AbortError } from '../../../ts/src/core/errors.js';
import { EventStream, type StreamController } from '../../../ts/src/core/event-stream.js';
import type { Incoming, RequestOptions, Rpc, StreamOptions } from '../../../ts/src/internal/rpc.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';

export interface Sent {
  readonly op: string;
  readonly body: WireMap;
}

export class FakeRpc {
  readonly sent: Sent[] = [];
  /** The open `train` stream: feed it worker messages. */
  train: { controller: StreamController<unknown, unknown>; cancelled: number; decodeEvent: (m: Incoming) => unknown; decodeFinal: (m: Incoming) => unknown } | undefined;
  #datasets = 0;

  constructor(readonly answer: (op: string, body: WireMap) => WireMap | Promise<WireMap> = (op) => this.#default(op)) {}

  get rpc(): Rpc {
    return this as unknown as Rpc;
  }

  request<R>(op: string, body: WireMap, _tensors: unknown, options: RequestOptions<R> = {}): Promise<R> {
    this.sent.push({ op, body });
    if (options.signal?.aborted) return Promise.reject(new AbortError(`${op} was aborted`));
    return Promise.resolve(this.answer(op, body)).then((reply) => {
      const incoming = { body: reply, tensors: {} };
      return options.decode ? options.decode(incoming) : (incoming as R);
    });
  }

  stream<E, F>(op: string, body: WireMap, _tensors: unknown, options: StreamOptions<E, F> = {}): EventStream<E, F> {
    this.sent.push({ op, body });
    let controller!: StreamController<E, F>;
    const state = { controller: undefined as never, cancelled: 0, decodeEvent: options.decodeEvent!, decodeFinal: options.decodeFinal! };
    const stream = new EventStream<E, F>((c) => (controller = c), () => (state.cancelled += 1));
    this.train = { ...state, controller: controller as StreamController<unknown, unknown> };
    Object.defineProperty(this.train, 'cancelled', { get: () => state.cancelled });
    return stream;
  }

  /** Sends a worker event body on the open train stream. */
  event(body: WireMap): void {
    this.train!.controller.event(this.train!.decodeEvent({ body, tensors: {} }));
  }

  /** Ends the open train stream with a worker reply body. */
  reply(body: WireMap): void {
    this.train!.controller.end(this.train!.decodeFinal({ body, tensors: {} }));
  }

  ops(): string[] {
    return this.sent.map((s) => s.op);
  }

  #default(op: string): WireMap {
    if (op === 'data_open') return { dataset: `ds-${++this.#datasets}` };
    if (op === 'data_append') return { count: 0 };
    if (op === 'data_close') return { closed: true };
    return {};
  }
}

/** Waits until `check()` holds (microtasks and timers of the job's pipeline run meanwhile). */
export async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 1));
  }
}
