/**
 * JSON lines in and out for the data commands: rows come from a file or stdin (`-`), one JSON value
 * per line (blank lines skipped), validated one by one with errors named `file:line`; results go to
 * stdout or `--out FILE`, one JSON line each.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
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

/** Groups an async iterable into arrays of at most `size`. */
export async function* chunks<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length >= size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
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

export function openSink(path: string | undefined, stdout: Writable): Sink {
  if (path === undefined || path === '-') {
    return { toFile: false, write: (v) => writeLine(stdout, toJson(v)), close: async () => {} };
  }
  const file = createWriteStream(path);
  return {
    toFile: true,
    write: (v) => writeLine(file, toJson(v)),
    close: async () => {
      file.end();
      await finished(file);
    },
  };
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
