/**
 * The ZeroMQ DEALER side of one worker connection: sends requests, runs the single receive loop and
 * routes each reply, event or error to its open request by id.
 */
import { Decoder } from '@msgpack/msgpack';
import { Dealer, type Observer, type SocketOptions } from 'zeromq';
import { ProtocolError, REMOTE_ERROR_CODES, RemoteError, type RemoteErrorCode } from '../core/errors.js';
import type { LogFunction } from '../core/logger.js';
import type { CancelRequest } from '../gen/schema/cancel-request.js';
import { type Message, type NamedTensor, PROTOCOL_VERSION, type WireMap, decodeMessage, encodeMessage } from './wire.js';
import { userFieldNames } from './field-names.js';

/** Receives what the worker sends for one request. Exactly one of onReply/onError ends it. */
export interface PendingHandlers {
  onEvent(msg: Message): void;
  onReply(msg: Message): void;
  onError(error: Error): void;
}

/** The largest request id; ids count up from 1 and never repeat within a connection. */
const MAX_ID = Number.MAX_SAFE_INTEGER;

export class Transport {
  readonly #socket: Dealer;
  readonly #pending = new Map<number, PendingHandlers>();
  readonly #log: LogFunction;
  readonly #outbox: Buffer[][] = [];
  #nextId = 1;
  #sending = false;
  #closed = false;

  private constructor(socket: Dealer, log: LogFunction) {
    this.#socket = socket;
    this.#log = log;
    void this.#receiveLoop();
  }

  /**
   * Connects a DEALER to the worker's bound endpoint. `socketOptions` adds to the defaults (the
   * remote link's CURVE keys, heartbeats and reconnect intervals). With `watchEvents`, {@link events}
   * is watching before the socket connects, so it misses no event: libzmq reports a refused handshake
   * once and never retries it (a protocol error ends the connection for good), and a watch begun after
   * `connect()` loses that report whenever the handshake is quicker than this thread (a loaded machine).
   */
  static connect(endpoint: string, log: LogFunction, socketOptions: SocketOptions<Dealer> = {}, watchEvents = false): Transport {
    const socket = new Dealer({ linger: 0, receiveHighWaterMark: 0, sendHighWaterMark: 0, ...socketOptions });
    if (watchEvents) void socket.events; // the getter attaches the monitor; events queue there until read
    socket.connect(endpoint);
    return new Transport(socket, log);
  }

  /** The socket's connection events (connect, disconnect, handshake failures): the remote link watches them. */
  get events(): Observer {
    return this.#socket.events;
  }

  /** Number of requests still waiting for their final message. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * Sends a request and registers its handlers; returns its id. Tensor data is sent without copying.
   * Throws synchronously only for a message that cannot be encoded (e.g. a header over 1 MiB).
   */
  send(op: string, body: WireMap, tensors: readonly NamedTensor[], handlers: PendingHandlers): number {
    if (this.#closed) throw new ProtocolError('the connection to the worker is closed');
    const id = this.#nextId;
    this.#nextId = id >= MAX_ID ? 1 : id + 1;
    const frames = encodeMessage({ v: PROTOCOL_VERSION, id, kind: 'request', op, body, tensors });
    this.#pending.set(id, handlers);
    this.#enqueue(frames, id);
    return id;
  }

  /**
   * Asks the worker to cancel request `id`, or only its part `part` (one job of a `train_many`); fire and
   * forget: its final message still arrives.
   */
  cancel(id: number, part?: number): void {
    if (this.#closed || !this.#pending.has(id)) return;
    const body: WireMap = part === undefined ? ({ target: id } satisfies CancelRequest) : ({ target: id, part } satisfies CancelRequest);
    this.send('cancel', body, [], {
      onEvent: () => {},
      onReply: () => {},
      onError: (error) => this.#log('debug', `cancel of request ${id} failed: ${error.message}`),
    });
  }

  /** Stops routing messages for `id`; anything that still arrives for it is dropped. */
  forget(id: number): void {
    this.#pending.delete(id);
  }

  /**
   * Fails every open request with `error`; later messages for them are dropped, and requests still
   * waiting in this side's send queue are not sent.
   */
  failAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#outbox.length = 0;
    for (const handlers of pending) handlers.onError(error);
  }

  /** Fails every open request with `error` and closes the socket. Idempotent. */
  close(error: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outbox.length = 0;
    this.#socket.close();
    this.failAll(error);
  }

  #enqueue(frames: Buffer[], id: number): void {
    if (this.#sending) {
      this.#outbox.push(frames);
      return;
    }
    this.#sending = true;
    this.#sendNow(frames, id);
  }

  // ZeroMQ allows one blocking send at a time; messages queue here meanwhile, in order.
  #sendNow(frames: Buffer[], id: number): void {
    this.#socket.send(frames).then(
      () => this.#drain(),
      (cause: unknown) => {
        if (!this.#closed) this.#fail(id, new ProtocolError('sending to the worker failed', { cause }));
        this.#drain();
      },
    );
  }

  #drain(): void {
    const next = this.#outbox.shift();
    if (next === undefined || this.#closed) {
      this.#sending = false;
      return;
    }
    this.#sendNow(next, 0);
  }

  async #receiveLoop(): Promise<void> {
    while (!this.#closed) {
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch (cause) {
        if (this.#closed) return;
        this.close(new ProtocolError('receiving from the worker failed', { cause }));
        return;
      }
      this.#dispatch(frames);
    }
  }

  #dispatch(frames: Buffer[]): void {
    let msg: Message;
    try {
      msg = decodeMessage(frames);
    } catch (error) {
      const id = peekId(frames[0]);
      this.#log('error', `unreadable message from the worker (id ${id ?? '?'}): ${(error as Error).message}`);
      if (id !== undefined) this.#fail(id, error as Error);
      return;
    }
    const handlers = this.#pending.get(msg.id);
    if (handlers === undefined) {
      if (msg.kind === 'error') this.#log(msg.id === 0 ? 'error' : 'debug', `worker error for request ${msg.id}: ${JSON.stringify(msg.body)}`);
      return;
    }
    switch (msg.kind) {
      case 'event':
        handlers.onEvent(msg);
        return;
      case 'reply':
        this.#pending.delete(msg.id);
        handlers.onReply(msg);
        return;
      case 'error':
        this.#pending.delete(msg.id);
        handlers.onError(remoteError(msg));
        return;
      default:
        this.#fail(msg.id, new ProtocolError(`the worker sent a message of kind ${JSON.stringify(msg.kind)}`));
    }
  }

  #fail(id: number, error: Error): void {
    const handlers = this.#pending.get(id);
    if (handlers === undefined) return;
    this.#pending.delete(id);
    handlers.onError(error);
  }
}

/** Turns an `error` message into a {@link RemoteError}; an unknown code becomes `internal`. */
export function remoteError(msg: Message): RemoteError {
  return remoteErrorOf(msg.op, msg.body);
}

/** The {@link RemoteError} of an error body `{code, message, details?}` that op `op` sent (also inside an event). */
export function remoteErrorOf(op: string, body: WireMap): RemoteError {
  const { code, message, details } = body;
  const known = typeof code === 'string' && REMOTE_ERROR_CODES.has(code);
  const detailMap = typeof details === 'object' && details !== null && !Array.isArray(details) && !(details instanceof Uint8Array) ? details : {};
  return new RemoteError(
    known ? (code as RemoteErrorCode) : 'internal',
    typeof message === 'string' ? userFieldNames(message) : JSON.stringify(body),
    op,
    known ? detailMap : { ...detailMap, code: code ?? null },
  );
}

const peekDecoder = new Decoder();

/** The id of a message that failed validation, when its header is at least a map with an integer id. */
function peekId(head: Buffer | undefined): number | undefined {
  if (head === undefined) return undefined;
  try {
    const header = peekDecoder.decode(head) as { id?: unknown };
    return typeof header.id === 'number' && Number.isSafeInteger(header.id) && header.id > 0 ? header.id : undefined;
  } catch {
    return undefined;
  }
}
