/**
 * The `hello` exchange every connection starts with (WIRE.md), shared by the local {@link Supervisor}
 * and the remote link: a bare request with a deadline, and the reply's parse.
 */
import { z } from 'zod';
import { type Capabilities, capabilitiesSchema } from '../core/capabilities.js';
import { WorkerStartError } from '../core/errors.js';
import { helloReplySchema } from '../gen/schema/hello-reply.js';
import type { HelloRequest } from '../gen/schema/hello-request.js';
import { toSnake } from '../spec/case.js';
import { packageVersion } from './package.js';
import type { Transport } from './transport.js';
import { type Message, PROTOCOL_VERSION, type WireMap } from './wire.js';

/** The worker's answer to `hello`. */
export interface HelloInfo {
  readonly protocol: number;
  readonly workerVersion: string;
  readonly pid: number;
  readonly capabilities: Capabilities;
  /** A worker the SDK started: ms from spawning it to its `hello` reply (run reports show it). */
  readonly startupMs?: number;
}

/** The `hello` request body this SDK sends (the worker's HelloRequest, proto/schema/hello_request.json). */
export function helloBody(clientId?: string): WireMap {
  return toSnake({ protocol: PROTOCOL_VERSION, client: `softprompt-ts/${packageVersion()}`, clientId } satisfies HelloRequest) as WireMap;
}

/** The worker's `hello` reply (its HelloReply, proto/schema/hello_reply.json), its capabilities checked on their own. */
export function parseHello(msg: Message): HelloInfo {
  const hello = helloReplySchema.extend({ capabilities: z.unknown() }).safeParse(msg.body);
  if (!hello.success) throw new WorkerStartError(`The worker's hello reply is malformed: ${JSON.stringify(msg.body)}`);
  const caps = capabilitiesSchema.safeParse(hello.data.capabilities);
  if (!caps.success) throw new WorkerStartError(`The worker's capabilities are malformed: ${caps.error.message}`);
  const { protocol, worker, pid } = hello.data;
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
