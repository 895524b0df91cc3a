/**
 * The `hello` exchange every connection starts with (WIRE.md), shared by the local {@link Supervisor}
 * and the remote link: a bare request with a deadline, and the reply's parse.
 */
import { type Capabilities, capabilitiesSchema } from '../core/capabilities.js';
import { WorkerStartError } from '../core/errors.js';
import type { Transport } from './transport.js';
import type { Message, WireMap } from './wire.js';

/** The worker's answer to `hello`. */
export interface HelloInfo {
  readonly protocol: number;
  readonly workerVersion: string;
  readonly pid: number;
  readonly capabilities: Capabilities;
  /** A worker the SDK started: ms from spawning it to its `hello` reply (run reports show it). */
  readonly startupMs?: number;
}

export function parseHello(msg: Message): HelloInfo {
  const { protocol, worker, pid, capabilities } = msg.body;
  if (typeof protocol !== 'number' || typeof worker !== 'string' || typeof pid !== 'number') {
    throw new WorkerStartError(`The worker's hello reply is malformed: ${JSON.stringify(msg.body)}`);
  }
  const caps = capabilitiesSchema.safeParse(capabilities);
  if (!caps.success) throw new WorkerStartError(`The worker's capabilities are malformed: ${caps.error.message}`);
  return { protocol, workerVersion: worker, pid, capabilities: caps.data };
}

/**
 * A bare request with a deadline, for the links' own handshake and shutdown. Past the deadline it
 * rejects with `timeoutError()` (default: a {@link WorkerStartError} saying the worker did not answer).
 */
export function unary(
  transport: Transport,
  op: string,
  body: WireMap,
  timeoutMs: number,
  timeoutError: () => Error = () => new WorkerStartError(`The worker did not answer ${op} within ${timeoutMs} ms`),
): Promise<Message> {
  return new Promise<Message>((resolve, reject) => {
    const timer = setTimeout(() => {
      transport.forget(id);
      reject(timeoutError());
    }, timeoutMs);
    const settle = () => clearTimeout(timer);
    const id = transport.send(op, body, [], {
      onEvent: () => {},
      onReply: (msg) => (settle(), resolve(msg)),
      onError: (error) => (settle(), reject(error)),
    });
  });
}
