/**
 * The two primitives every client method is built on: {@link Rpc.request} (one request, one reply)
 * and {@link Rpc.stream} (one request, events, one final reply). They validate tensors, wait for a
 * live worker (across a restart), apply `signal` and `timeoutMs`, send `cancel` to the worker when a
 * call is abandoned, and turn every failure into a typed {@link SoftpromptError}.
 *
 * At most `maxInFlight` calls are open at once (backpressure: a worker queues at most 1,024); the
 * others wait here, in call order, their deadlines and signals already running.
 *
 * A method module (jobs/, inference) is a function over an `Rpc`:
 *
 * ```ts
 * export function embed(rpc: Rpc, input: EmbedInput, options?: CallOptions): Promise<Embeddings> {
 *   const body = parseOrThrow(embedInputSchema, input, 'input');       // ValidationError naming the field
 *   return rpc.request('embed', body, undefined, { ...options, decode: decodeEmbeddings });
 * }
 * ```
 */
import type { Capabilities } from '../core/capabilities.js';
import { AbortError, ProtocolError, RemoteError, SoftpromptError, TimeoutError } from '../core/errors.js';
import { EventStream, type StreamController } from '../core/event-stream.js';
import { type Tensor, type TensorMap, checkTensor } from '../core/tensor.js';
import type { LogFunction } from '../core/logger.js';
import type { LinkConnection, WorkerLink } from './link.js';
import type { Message, NamedTensor, WireMap } from './wire.js';

/** Per-call options every public method accepts. */
export interface CallOptions {
  /** Aborting cancels the call: the worker is asked to stop, the call rejects with {@link AbortError}. */
  readonly signal?: AbortSignal;
  /** Deadline in ms; past it the worker is asked to stop and the call rejects with {@link TimeoutError}. */
  readonly timeoutMs?: number;
}

/** A reply or event as method modules see it: the body and the tensors by name (views, not copies). */
export interface Incoming {
  readonly body: WireMap;
  readonly tensors: Readonly<Record<string, Tensor>>;
}

export interface RequestOptions<R> extends CallOptions {
  /** Turns the reply into the method's result; a throw becomes a {@link ProtocolError}. Default: the {@link Incoming} itself. */
  readonly decode?: (reply: Incoming) => R;
}

export interface StreamOptions<E, F> extends CallOptions {
  /** Turns each event into the stream's event type. Default: the {@link Incoming} itself. */
  readonly decodeEvent?: (event: Incoming) => E;
  /** Turns the final reply into the stream's result. Default: the {@link Incoming} itself. */
  readonly decodeFinal?: (reply: Incoming) => F;
  /**
   * Without `timeoutMs`, apply the client's `requestTimeoutMs` as a deadline since the worker's last
   * message (each event restarts it): an op that reports progress (embed, rerank, evaluate, generate)
   * may run long, but a stopped or stuck worker still fails it with {@link TimeoutError}.
   */
  readonly idleDeadline?: boolean;
}

/** What `#call` applies: a total deadline and/or one since the last message. */
interface Deadlines extends CallOptions {
  readonly idleTimeoutMs?: number;
}

interface Sink {
  event(msg: Message): void;
  reply(msg: Message): void;
  fail(error: Error): void;
}

export class Rpc {
  readonly #link: WorkerLink;
  readonly #defaultTimeoutMs: number | undefined;
  readonly #inFlight: InFlight;
  /** Set on the Rpc a restart hook gets: its calls go to this (not yet current) worker only. */
  #pinned: LinkConnection | undefined;

  /** `link`: a local Supervisor or a RemoteLink. `maxInFlight`: calls open at once (default: no limit). */
  constructor(link: WorkerLink, defaultTimeoutMs: number | undefined, maxInFlight = Number.POSITIVE_INFINITY) {
    this.#link = link;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#inFlight = new InFlight(maxInFlight);
  }

  /** The client's log function, for method modules that report beside their calls (jobs/job.ts). */
  get log(): LogFunction {
    return this.#link.log;
  }

  /** The worker's capabilities as of its latest handshake (versions, devices). */
  get capabilities(): Capabilities {
    return this.#link.hello.capabilities;
  }

  /** How long the worker took to start (spawn to hello), for a worker the SDK started. */
  get workerStartupMs(): number | undefined {
    return this.#link.hello.startupMs;
  }

  /**
   * Runs `replay` on every restarted worker before any other call reaches it (calls made meanwhile
   * wait): the hook for method modules that keep worker-side state, such as the prompts `sp.prompts`
   * loaded. `replay` gets an Rpc whose calls go to the new worker only. Failures are logged
   * ({@link WorkerLink.onRestart}). The hook's Rpc has no in-flight limit: the calls waiting for the
   * new worker hold this one's slots.
   */
  onRestart(replay: (rpc: Rpc) => Promise<void>): void {
    this.#link.onRestart((conn) => {
      const pinned = new Rpc(this.#link, this.#defaultTimeoutMs);
      pinned.#pinned = conn;
      return replay(pinned);
    });
  }

  /**
   * Sends `op` with `body` and `tensors`, resolves with the decoded reply. Unary calls get the
   * client's `requestTimeoutMs` unless `options.timeoutMs` is given.
   */
  request<R = Incoming>(op: string, body: WireMap, tensors?: TensorMap, options: RequestOptions<R> = {}): Promise<R> {
    const decode = options.decode ?? (identity as (m: Incoming) => R);
    const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
    return new Promise<R>((resolve, reject) => {
      this.#call(op, body, tensors, { ...options, timeoutMs }, {
        event: () => {},
        reply: (msg) => {
          try {
            resolve(decode(incoming(msg)));
          } catch (cause) {
            reject(decodeFailure(op, 'reply', cause));
          }
        },
        fail: reject,
      });
    });
  }

  /**
   * Sends `op` and returns its {@link EventStream}: each `event` message becomes an event, the final
   * `reply` the result. Streams have no default total deadline (training runs for hours): only
   * `options.timeoutMs`, or with `idleDeadline` the client's `requestTimeoutMs` since the last message. Leaving the loop or `stream.cancel()` sends `cancel`; the stream then ends as
   * the op defines (a remote `cancelled` error surfaces as {@link AbortError}).
   */
  stream<E = Incoming, F = Incoming>(op: string, body: WireMap, tensors?: TensorMap, options: StreamOptions<E, F> = {}): EventStream<E, F> {
    return this.streamParts(op, body, tensors, options).stream;
  }

  /**
   * {@link stream}, for an op made of parts (`train_many`: one per job): `cancelPart(i)` asks the worker to
   * cancel part `i` alone; the stream goes on with the others.
   */
  streamParts<E = Incoming, F = Incoming>(
    op: string,
    body: WireMap,
    tensors?: TensorMap,
    options: StreamOptions<E, F> = {},
  ): { stream: EventStream<E, F>; cancelPart: (part: number) => void } {
    const decodeEvent = options.decodeEvent ?? (identity as (m: Incoming) => E);
    const decodeFinal = options.decodeFinal ?? (identity as (m: Incoming) => F);
    let controller!: StreamController<E, F>;
    let cancel: (part?: number) => void = () => {};
    const stream = new EventStream<E, F>(
      (c) => (controller = c),
      () => cancel(),
    );
    const idleTimeoutMs = options.idleDeadline && options.timeoutMs === undefined ? this.#defaultTimeoutMs : undefined;
    const deadlines: Deadlines = { ...options, ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }) };
    cancel = this.#call(op, body, tensors, deadlines, {
      event: (msg) => {
        try {
          controller.event(decodeEvent(incoming(msg)));
        } catch (cause) {
          controller.fail(decodeFailure(op, 'event', cause));
          cancel();
        }
      },
      reply: (msg) => {
        try {
          controller.end(decodeFinal(incoming(msg)));
        } catch (cause) {
          controller.fail(decodeFailure(op, 'reply', cause));
        }
      },
      fail: (error) => controller.fail(error),
    });
    return { stream, cancelPart: (part) => cancel(part) };
  }

  /**
   * Opens one request and feeds `sink` exactly one of reply/fail (plus events before it). Returns a
   * function that asks the worker to cancel the request (or, given `part`, that part of it), keeping the
   * sink open for its final message.
   */
  #call(op: string, body: WireMap, tensors: TensorMap | undefined, options: Deadlines, sink: Sink): (part?: number) => void {
    let settled = false;
    let cancelRequested = false;
    const partsCancelled: number[] = [];
    let sent: { id: number; cancel: (id: number, part?: number) => void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let leave = () => {};
    const { signal, timeoutMs, idleTimeoutMs } = options;

    const cleanup = () => {
      settled = true;
      if (timer) clearTimeout(timer);
      if (idleTimer) clearTimeout(idleTimer);
      signal?.removeEventListener('abort', onAbort);
      leave();
    };
    const abandon = (error: Error) => {
      if (settled) return;
      cleanup();
      if (sent) sent.cancel(sent.id); // the final message still arrives; the transport drops it
      sink.fail(error);
    };
    const onAbort = () => abandon(new AbortError(`${op} was aborted`, { cause: signal?.reason }));

    let named: NamedTensor[];
    try {
      named = namedTensors(tensors);
    } catch (error) {
      sink.fail(error as Error);
      return () => {};
    }
    if (signal?.aborted) {
      onAbort();
      return () => {};
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) timer = setTimeout(() => abandon(new TimeoutError(op, timeoutMs)), timeoutMs);
    const armIdle = () => {
      if (idleTimeoutMs === undefined || settled) return;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => abandon(new TimeoutError(`${op} (no message from the worker)`, idleTimeoutMs)), idleTimeoutMs);
    };
    armIdle();

    const send = (conn: LinkConnection) => {
      if (settled) return;
      try {
        const transport = conn.transport;
        const id = transport.send(op, body, named, {
          onEvent: (msg) => settled || (armIdle(), sink.event(msg)),
          onReply: (msg) => settled || (cleanup(), sink.reply(msg)),
          onError: (error) => {
            if (settled) return;
            cleanup();
            const cancelled = cancelRequested && error instanceof RemoteError && error.code === 'cancelled';
            sink.fail(cancelled ? new AbortError(`${op} was cancelled`, { cause: error }) : error);
          },
        });
        sent = { id, cancel: (i, part) => transport.cancel(i, part) };
        if (cancelRequested) transport.cancel(id);
        else for (const part of partsCancelled) transport.cancel(id, part);
      } catch (error) {
        cleanup();
        sink.fail(error as Error);
      }
    };
    leave = this.#inFlight.enter(() => {
      if (settled) return;
      const live = this.#pinned ?? this.#link.current;
      if (live) send(live);
      else this.#link.connection().then(send, (error: Error) => settled || (cleanup(), sink.fail(error)));
    });
    if (settled) leave(); // it settled inside enter (a send that threw), before `leave` was set

    return (part?: number) => {
      if (settled || cancelRequested) return;
      if (part !== undefined) {
        partsCancelled.push(part);
        if (sent) sent.cancel(sent.id, part);
        return;
      }
      cancelRequested = true;
      if (sent) sent.cancel(sent.id);
    };
  }
}

/** At most `limit` calls started at once; the others wait, in call order, until one leaves. */
class InFlight {
  #free: number;
  readonly #waiting: { start: () => void; state: 'waiting' | 'running' | 'left' }[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  /** Runs `start` now or once a slot frees; returns `leave`, called when the call settles (or gives up waiting). */
  enter(start: () => void): () => void {
    const entry = { start, state: 'waiting' as 'waiting' | 'running' | 'left' };
    const leave = () => {
      const wasRunning = entry.state === 'running';
      entry.state = 'left';
      if (wasRunning) this.#release();
    };
    if (this.#free > 0) {
      this.#free--;
      entry.state = 'running';
      start();
    } else {
      this.#waiting.push(entry);
    }
    return leave;
  }

  #release(): void {
    for (let next = this.#waiting.shift(); next !== undefined; next = this.#waiting.shift()) {
      if (next.state !== 'waiting') continue; // abandoned while it waited
      next.state = 'running';
      next.start();
      return;
    }
    this.#free++;
  }
}

function identity(m: Incoming): Incoming {
  return m;
}

function incoming(msg: Message): Incoming {
  return { body: msg.body, tensors: Object.fromEntries(msg.tensors.map(({ name, ...t }) => [name, t as Tensor])) };
}

function namedTensors(tensors: TensorMap | undefined): NamedTensor[] {
  if (tensors === undefined) return [];
  return Object.entries(tensors).map(([name, t]) => {
    checkTensor(`tensors.${name}`, t);
    return { name, dtype: t.dtype, shape: t.shape, data: t.data } as NamedTensor;
  });
}

function decodeFailure(op: string, what: string, cause: unknown): SoftpromptError {
  if (cause instanceof SoftpromptError && !(cause.code === 'validation')) return cause;
  return new ProtocolError(`unexpected ${op} ${what} from the worker: ${(cause as Error)?.message ?? String(cause)}`, { cause });
}
