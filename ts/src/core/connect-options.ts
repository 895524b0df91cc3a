/**
 * The options of `Softprompt.connect()` (a shared worker, `softprompt-worker serve`): public types. Their
 * schema, defaults and key-file reading are internal (internal/connect-options.ts).
 */
import type { LogFunction, Logger } from './logger.js';

/** CURVE keys, Z85: given directly, or read from a folder of key files. */
export type ConnectKeys =
  | { serverPublicKey: string; clientPublicKey: string; clientSecretKey: string }
  /**
   * A folder (`~/` is the home folder) holding the server's public key file `server.key` and this
   * client's `NAME.key_secret` (`name`, default `'client'`), as `softprompt-worker keys new` writes them.
   */
  | { dir: string; name?: string };

/** Options of `Softprompt.connect()`. Every field is optional, but TCP needs `keys`. */
export interface ConnectOptions {
  /** CURVE keys; required for `tcp://` endpoints (TCP always runs with CURVE). */
  keys?: ConnectKeys;
  /**
   * How long the first handshake may take, in ms; past it `connect` fails saying the server is
   * unreachable or refused the keys. Default 10000.
   */
  connectTimeoutMs?: number;
  /**
   * Default deadline of each call, in ms; a call's own `timeoutMs` wins. Default: none. Ops that report
   * progress (embed, rerank, evaluate, generate) apply it since the worker's last message, so a long
   * corpus still finishes while a stopped worker fails the call with `TimeoutError`. Training has none.
   */
  requestTimeoutMs?: number;
  /**
   * ZMTP heartbeat interval, in ms: a peer silent for 3 intervals counts as gone, and the open calls
   * fail with `ConnectionLostError`. Default 2000.
   */
  heartbeatMs?: number;
  /**
   * How long a call made while the connection is down waits for it to come back, in ms, before it
   * fails with `ConnectionLostError`. Default 30000.
   */
  reconnectWaitMs?: number;
  /** Calls open at once; further calls wait in the client, in call order. Default 128. */
  maxInFlight?: number;
  /** Where SDK diagnostics go. Default: warnings and errors to `console.error`. */
  logger?: Logger | LogFunction;
}
