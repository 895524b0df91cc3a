/**
 * Where a job's rows come from: a JSONL file the worker reads, or rows from TS that are streamed to
 * the worker in chunks (`data_open` / `data_append` / `data_close`, python/softprompt_worker/ops/data.py),
 * never as one huge message. Mirrors the `data` spec of python/softprompt_worker/data.py.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { z } from 'zod';
import { AbortError, ValidationError } from '../core/errors.js';
import type { Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';
import { type DataConfig, dataFields } from '../gen/schema/data.js';
import type { DataAppendRequest } from '../gen/schema/data-append-request.js';
import type { DataCloseRequest } from '../gen/schema/data-close-request.js';
import { dataOpenReplySchema } from '../gen/schema/data-open-reply.js';
import type { DataOpenRequest } from '../gen/schema/data-open-request.js';
import { type Same, dispatch, isRecord, nonEmpty } from '../spec/schema.js';

/** One training row: a JSON object whose fields the task defines (`{ input, target }`, ...). */
export type JsonRow = Readonly<Record<string, unknown>>;

/** Rows in a JSONL file (one JSON object per line; blank lines are ignored), read by the worker. */
export interface FileSource {
  /** The file; a relative path is resolved against `process.cwd()` when the spec is built. */
  readonly path: string;
}

/** Rows from TS: an array, or any (async) iterable (a generator is consumed once, at upload). */
export interface RowsSource<Row extends object = JsonRow> {
  readonly rows: readonly Row[] | Iterable<Row> | AsyncIterable<Row>;
}

export type DataSource<Row extends object = JsonRow> = FileSource | RowsSource<Row>;

/** A job's data. */
export interface DataOptions<Row extends object = JsonRow> {
  /** The training rows. */
  readonly train: DataSource<Row>;
  /** Held-out rows for evaluation. Default: none (or `evalFraction` of `train`). */
  readonly eval?: DataSource<Row>;
  /**
   * Share of the training rows held out for evaluation when `eval` is not given, in [0, 1). The split
   * is a shuffle seeded by `training.seed`, so it is the same on every run. Default 0 (data.py).
   */
  readonly evalFraction?: number;
  /**
   * A row the task cannot use: `'fail'` (default) stops the job with its `file:line` (or
   * `dataset[i]`); `'skip'` goes on and lists every skipped row in the `data` event (data.py).
   */
  readonly onBadRow?: 'fail' | 'skip';
}

/** {@link DataOptions} after validation: defaults filled, file paths absolute. */
export interface ResolvedData<Row extends object = JsonRow> {
  readonly train: DataSource<Row>;
  readonly eval?: DataSource<Row>;
  readonly evalFraction: number;
  readonly onBadRow: 'fail' | 'skip';
}

const isIterable = (v: unknown): boolean =>
  v !== null && typeof v === 'object' && (Symbol.iterator in v || Symbol.asyncIterator in v) && typeof v !== 'string';

const fileSchema = z.strictObject({ path: nonEmpty().transform((p) => resolve(p)) });
const rowsSchema = z.strictObject({
  rows: z.custom<RowsSource['rows']>(isIterable, { error: 'expected an array or (async) iterable of row objects' }),
});
const neither = z.custom<never>(() => false, { error: 'expected { path } (a JSONL file) or { rows } (rows from TS)' });
const sourceSchema = dispatch<DataSource>((v) =>
  isRecord(v) && 'rows' in v ? rowsSchema : isRecord(v) && 'path' in v ? fileSchema : (neither as z.ZodType<DataSource>),
);

// The documented options are the worker's DataOptions (proto/schema/data.json), or this fails to compile.
true satisfies Same<Pick<ResolvedData, 'evalFraction' | 'onBadRow'>, DataConfig>;

export const dataSchema = z
  .strictObject({
    train: sourceSchema,
    eval: sourceSchema.optional(),
    ...dataFields,
  })
  .superRefine((d, ctx) => {
    if (d.eval !== undefined && d.evalFraction > 0) {
      ctx.addIssue({ code: 'custom', path: ['evalFraction'], message: 'give either eval data or evalFraction, not both' });
    }
  }) as unknown as z.ZodType<ResolvedData>;

// -- upload ---------------------------------------------------------------------------------------

/** Bytes of rows per `data_append` message. The wire caps a header at 1 MiB; 256 KiB keeps each send short. */
export const DEFAULT_CHUNK_BYTES = 256 * 1024;
/** The largest single row sent from TS (JSON bytes); bigger rows belong in a JSONL file. */
export const MAX_ROW_BYTES = 900 * 1024;

/**
 * Groups `rows` into chunks of at most `chunkBytes` (JSON-encoded size, an upper bound of the
 * MessagePack size); a row larger than `chunkBytes` travels alone. `where` names rows in errors.
 */
export async function* chunkRows(
  rows: RowsSource['rows'],
  chunkBytes: number,
  where: string,
): AsyncGenerator<JsonRow[]> {
  let chunk: JsonRow[] = [];
  let bytes = 0;
  let index = 0;
  for await (const row of rows as AsyncIterable<JsonRow>) {
    const odd = notJsonData(row, new Set());
    if (odd !== undefined) {
      throw new ValidationError(`${where}[${index}]${odd.path}: ${odd.what} is not JSON data; rows hold plain objects, arrays, strings, numbers, booleans and null`);
    }
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(row) ?? 'null');
    } catch (cause) {
      throw new ValidationError(`${where}[${index}]: not JSON-serialisable (${(cause as Error).message})`, undefined, { cause });
    }
    if (size > MAX_ROW_BYTES) {
      throw new ValidationError(`${where}[${index}]: ${size} bytes; a row sent from TS may be at most ${MAX_ROW_BYTES} bytes (use a JSONL file)`);
    }
    if (chunk.length > 0 && bytes + size > chunkBytes) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(row);
    bytes += size;
    index += 1;
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * The first value inside `value` that JSON cannot carry as it is (MessagePack would send a Date as an
 * extension the worker refuses, a Map or Set as `{}`, a typed array as bytes), with its path below the
 * row; undefined for plain JSON data. A repeated object (a cycle) counts too.
 */
function notJsonData(value: unknown, seen: Set<object>, path = ''): { path: string; what: string } | undefined {
  if (value === null || value === undefined || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return undefined;
  if (typeof value !== 'object') return { path, what: `a ${typeof value}` };
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return { path, what: `a ${proto?.constructor?.name ?? 'non-plain object'}` };
  if (seen.has(value)) return { path, what: 'a cycle' };
  seen.add(value);
  for (const [key, v] of Object.entries(value)) {
    const step = Array.isArray(value) ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
    const odd = notJsonData(v, seen, path + step);
    if (odd !== undefined) return odd;
  }
  seen.delete(value);
  return undefined;
}

/** Data a job has uploaded: the worker's `data` body, and how to free the worker's copies. */
export interface UploadedData {
  readonly body: WireMap;
  /** Closes the datasets this upload opened (errors ignored: the worker may be gone). */
  close(): Promise<void>;
}

export interface UploadOptions {
  readonly signal: AbortSignal;
  readonly chunkBytes: number;
}

/**
 * Streams every `{ rows }` source to the worker and returns the `data` body that references the
 * datasets (`{ dataset: id }`); file sources pass through as `{ path }`.
 */
export async function uploadData(rpc: Rpc, data: ResolvedData, options: UploadOptions): Promise<UploadedData> {
  const opened: string[] = [];
  const close = async () => {
    await Promise.all(opened.map((dataset) => rpc.request('data_close', { dataset } satisfies DataCloseRequest).catch(() => undefined)));
  };
  const source = async (src: DataSource, where: string): Promise<WireMap> => {
    if ('path' in src) return { path: src.path };
    const requested = `${where}@${randomUUID().slice(0, 8)}`;
    const { dataset } = await rpc.request('data_open', { dataset: requested } satisfies DataOpenRequest, undefined, {
      signal: options.signal,
      decode: (r) => dataOpenReplySchema.parse(r.body),
    });
    opened.push(dataset);
    for await (const rows of chunkRows(src.rows, options.chunkBytes, where)) {
      if (options.signal.aborted) throw new AbortError('training was cancelled while uploading its data');
      const body = { dataset, rows: rows as unknown as WireMap[] } satisfies DataAppendRequest;
      await rpc.request('data_append', body, undefined, { signal: options.signal });
    }
    return { dataset };
  };
  try {
    const body: Record<string, unknown> = { train: await source(data.train, 'data.train.rows') };
    if (data.eval !== undefined) body['eval'] = await source(data.eval, 'data.eval.rows');
    if (data.evalFraction > 0) body['eval_fraction'] = data.evalFraction;
    body['on_bad_row'] = data.onBadRow;
    return { body: body as WireMap, close };
  } catch (error) {
    await close();
    throw error;
  }
}
