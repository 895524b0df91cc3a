/**
 * What {@link Rpc} needs from whoever holds the connection to a worker: the local {@link Supervisor}
 * (a worker process it started and restarts) or a {@link RemoteLink} (a shared worker on another
 * machine, reached over CURVE, reconnected after a network failure). Calls see no difference.
 */
import type { LogFunction } from '../core/logger.js';
import type { HelloInfo } from './handshake.js';
import type { Transport } from './transport.js';

/** A live, handshaken connection: what a call is sent on. */
export interface LinkConnection {
  readonly transport: Transport;
  readonly hello: HelloInfo;
}

/** Replays state onto a new worker before it takes calls; see {@link WorkerLink.onRestart}. */
export type RestartHook = (conn: LinkConnection) => Promise<void>;

export interface WorkerLink {
  /** The live connection right now, if any: the fast path for calls. */
  readonly current: LinkConnection | undefined;
  /** The live connection, waiting for a restart or reconnect in progress; rejects with a typed error. */
  connection(): Promise<LinkConnection>;
  /** The latest handshake (kept across restarts and reconnects). */
  readonly hello: HelloInfo;
  /** The client's log function (the `logger` option). */
  readonly log: LogFunction;
  /**
   * Registers `hook` to run on a worker that lost this client's state (a restarted local worker, a
   * remote worker that restarted while the link was down) before it takes other calls.
   */
  onRestart(hook: RestartHook): void;
  /** Fails open calls with `ClientClosedError` and lets go of the worker (a local one is stopped). */
  close(): Promise<void>;
}
