/**
 * Pieces every inference module shares: the request-body translation, the prompt-name field, and unary
 * calls that report progress events.
 */
import { z } from 'zod';
import { toSnake } from '../spec/case.js';
import type { CallOptions, Incoming, Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';

/** How far a long call (embedding, reranking, evaluation) has come: `done` of `total` items. */
export interface Progress {
  readonly done: number;
  readonly total: number;
}

/** Options of calls that report progress (the worker sends at most two updates a second). */
export interface ProgressOptions extends CallOptions {
  /** Called with each progress update from the worker. */
  readonly onProgress?: (progress: Progress) => void;
}

/**
 * A validated options object → the worker's request body: names in snake_case at every depth
 * (`spec/case.ts`, the one place names change case), `undefined` left out (the worker applies its
 * defaults). Keys in `keep` hold user data (id maps, texts) and are copied as they are, as are a
 * model spec's config `overrides`.
 */
export function toWireBody(options: Record<string, unknown>, keep: readonly string[] = []): WireMap {
  return toSnake(options, ['overrides', ...keep]) as WireMap;
}

const progressSchema = z.object({ event: z.literal('progress'), done: z.number(), total: z.number() });

/**
 * A unary op whose worker emits `{"event": "progress", done, total}` events before its reply:
 * progress goes to `options.onProgress`, the reply through `decode`. `options.timeoutMs` is a total
 * deadline; without it the client's `requestTimeoutMs` applies since the worker's last message
 * (embedding a corpus can take long, but a stopped worker must not make the call wait forever).
 */
export function requestWithProgress<R>(
  rpc: Rpc,
  op: string,
  body: WireMap,
  decode: (reply: Incoming) => R,
  options: ProgressOptions = {},
): Promise<R> {
  const { onProgress, ...call } = options;
  const stream = rpc.stream(op, body, undefined, {
    ...call,
    idleDeadline: true,
    decodeEvent: (event) => {
      const progress = progressSchema.safeParse(event.body);
      if (progress.success) onProgress?.({ done: progress.data.done, total: progress.data.total });
    },
    decodeFinal: decode,
  });
  return stream.result(); // events still reach decodeEvent (and onProgress); result() only drops them
}
