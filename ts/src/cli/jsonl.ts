/**
 * JSON lines in and out for the data commands: rows come from a file or stdin (`-`), one JSON value
 * per line (blank lines skipped), validated one by one with errors named `file:line`; they are sent to
 * the worker in chunks bounded by rows and by bytes (`chunks`); results go to stdout or `--out FILE`,
 * one JSON line each.
 */
import { createReadStream, createWriteStream, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { MAX_HEADER_BYTES } from '../internal/wire.js';
import { UsageError } from './exit-codes.js';
import { toJson, writeLine } from './output.js';

export const IO_OPTIONS = {
  out: { type: 'string', short: 'o', arg: 'file', help: 'write JSON lines to this file instead of stdout' },
  'chunk-size': { type: 'string', arg: 'n', help: 'rows sent to the worker per request (results stream out per chunk). Default 256' },
} as const;

/** A JSONL row with where it came from (`rows.jsonl:3`). */
export interface Located<T> {
  readonly where: string;
  readonly row: T;
}

/** `-` (or nothing) is stdin. */
export function openInput(path: string | undefined, stdin: Readable = process.stdin): { stream: Readable; name: string } {
  if (path === undefined || path === '-') return { stream: stdin, name: 'stdin' };
  return { stream: createReadStream(path), name: path };
}

/**
 * Parses each non-blank line of `input` with `schema`. A line that is not JSON, or does not match,
 * is a {@link UsageError} naming `name:line` and the field.
 */
export async function* readRows<T>(input: { stream: Readable; name: string }, schema: z.ZodType<T>): AsyncGenerator<Located<T>> {
  const lines = createInterface({ input: input.stream, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of lines) {
      n += 1;
      if (line.trim() === '') continue;
      const where = `${input.name}:${n}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new UsageError(`${where}: not valid JSON (${(error as Error).message})`);
      }
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${where}: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message.replace(/^Invalid input: /, '')}`);
        throw new UsageError(issues.join('; '), issues);
      }
      yield { where, row: parsed.data };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`${input.name}: no such file`, [], { cause: error });
    throw error;
  }
}

/**
 * Text bytes one request carries at most: half the worker's header limit (`MAX_HEADER_BYTES`, 1 MiB),
 * which leaves room for MessagePack's framing and the other fields. Texts travel in the header, so a
 * chunk sized by rows alone fails on long texts.
 */
export const MAX_CHUNK_BYTES = MAX_HEADER_BYTES / 2;
/** A single row larger than a chunk goes alone, up to the header limit less room for the framing. */
export const MAX_ROW_BYTES = MAX_HEADER_BYTES - 64 * 1024;

/** How to cut rows into requests: at most `rows` rows and `bytes` text bytes each (`sizeOf` measures a row). */
export interface ChunkLimits<T> {
  readonly rows: number;
  readonly bytes?: number;
  readonly sizeOf?: (item: T) => number;
}

/**
 * Groups located rows into arrays of at most `limits.rows` rows whose sizes add up to at most
 * `limits.bytes` (default {@link MAX_CHUNK_BYTES}); a larger row goes alone. A row over
 * {@link MAX_ROW_BYTES} fails with a {@link UsageError} naming where it came from: no request could
 * carry it.
 */
export async function* chunks<T>(items: AsyncIterable<Located<T>>, limits: ChunkLimits<T>): AsyncGenerator<Located<T>[]> {
  const maxBytes = limits.bytes ?? MAX_CHUNK_BYTES;
  const sizeOf = limits.sizeOf ?? ((row: T) => Buffer.byteLength(JSON.stringify(row)));
  let chunk: Located<T>[] = [];
  let bytes = 0;
  for await (const item of items) {
    const size = sizeOf(item.row);
    if (size > MAX_ROW_BYTES) {
      throw new UsageError(`${item.where}: the row holds ${size} bytes of text; one request carries at most ${MAX_ROW_BYTES} (shorten or split it)`);
    }
    if (chunk.length > 0 && (chunk.length >= limits.rows || bytes + size > maxBytes)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

/** UTF-8 bytes of some strings (a row's texts). */
export function textBytes(...texts: readonly string[]): number {
  let n = 0;
  for (const t of texts) n += Buffer.byteLength(t);
  return n;
}

/** Reads all rows (evaluation needs the whole set). */
export async function readAll<T>(input: { stream: Readable; name: string }, schema: z.ZodType<T>): Promise<T[]> {
  const rows: T[] = [];
  for await (const { row } of readRows(input, schema)) rows.push(row);
  return rows;
}

/** Where result rows go: `--out FILE`, else stdout. */
export interface Sink {
  write(value: unknown): Promise<void>;
  close(): Promise<void>;
  readonly toFile: boolean;
}

/**
 * `--out FILE` (opened now, so a missing folder or an unwritable file fails before any work with a
 * {@link UsageError} that names it), else stdout.
 */
export function openSink(path: string | undefined, stdout: Writable): Sink {
  if (path === undefined || path === '-') {
    return { toFile: false, write: (v) => writeLine(stdout, toJson(v)), close: async () => {} };
  }
  const fd = openOutput(path);
  const file = createWriteStream('', { fd });
  let failure: Error | undefined;
  file.on('error', (error) => (failure ??= new Error(`--out ${path}: ${error.message}`, { cause: error })));
  return {
    toFile: true,
    write: async (v) => {
      if (failure) throw failure;
      await writeLine(file, toJson(v));
    },
    close: async () => {
      file.end();
      await finished(file).catch(() => {});
      if (failure) throw failure;
    },
  };
}

/** Opens `path` for writing, or says in the user's terms why it cannot be. */
function openOutput(path: string): number {
  const dir = dirname(resolve(path));
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new UsageError(`--out ${path}: the folder ${dir} does not exist (create it first: mkdir -p ${dir})`);
  }
  if (!isDir) throw new UsageError(`--out ${path}: ${dir} is not a folder`);
  try {
    return openSync(path, 'w');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EISDIR' ? 'is a folder' : code === 'EACCES' || code === 'EPERM' ? 'cannot be written (permission denied)' : (error as Error).message;
    throw new UsageError(`--out ${path}: ${why}`, [], { cause: error });
  }
}

/** Row `id` passes through to the output when present. */
export const rowId = z.union([z.string(), z.number()]).optional();

/** `schema`, also accepting a bare JSON string as `{ [field]: string }`. */
export function bareString<T>(field: string, schema: z.ZodType<T>): z.ZodType<T> {
  return z.preprocess((v) => (typeof v === 'string' ? { [field]: v } : v), schema) as unknown as z.ZodType<T>;
}

/**
 * Reads the first item now (so bad input fails before the worker starts, ~seconds earlier), and
 * returns an iterable of it followed by the rest.
 */
export async function prefetch<T>(items: AsyncIterable<T>): Promise<AsyncIterable<T>> {
  const it = items[Symbol.asyncIterator]();
  const first = await it.next();
  return {
    async *[Symbol.asyncIterator]() {
      if (first.done) return;
      yield first.value;
      for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
    },
  };
}
