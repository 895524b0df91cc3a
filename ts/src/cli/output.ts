/**
 * Where the CLI writes. stdout carries results only: human text by default, and with `--json` one
 * JSON document or JSON lines, nothing else. stderr carries everything for people: progress, notes,
 * worker logs and errors (with `--json`, errors are one JSON line there too).
 */
import type { Writable } from 'node:stream';
import { ValidationError } from '../core/errors.js';
import { UsageError, errorCodeOf } from './exit-codes.js';

/** Something drawn on stderr that must be cleared before a line is written and redrawn after (the progress bar). */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

/** `JSON.stringify` that writes NaN and ±Infinity as `null` (JSON has no such numbers). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}

export class Output {
  /** `--json`: machine output on stdout. */
  readonly json: boolean;
  readonly stdout: Writable;
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
  #status: StatusLine | undefined;

  constructor(json: boolean, stdout: Writable = process.stdout, stderr: Writable = process.stderr) {
    this.json = json;
    this.stdout = stdout;
    this.stderr = stderr;
  }

  /**
   * Whether results on stdout are for a person: no `--json` and stdout is a terminal. Anywhere else (a
   * pipe, a file) the data commands write JSON lines, as `gh` and `kubectl` do.
   */
  get terminal(): boolean {
    return !this.json && (this.stdout as Writable & { isTTY?: boolean }).isTTY === true;
  }

  /** One JSON value as one line on stdout; waits while the pipe is full (large outputs stay bounded). */
  async data(value: unknown): Promise<void> {
    await writeLine(this.stdout, toJson(value));
  }

  /** Human text on stdout (a line); nothing in `--json` mode. */
  print(text: string): void {
    if (!this.json) this.stdout.write(`${text}\n`);
  }

  /** A line for people on stderr (both modes), above the progress bar if one is drawn. */
  note(text: string): void {
    this.#status?.clear();
    this.stderr.write(`${text}\n`);
    this.#status?.redraw();
  }

  /** Registers (or removes) the status line {@link note} keeps intact. */
  setStatus(status: StatusLine | undefined): void {
    this.#status = status;
  }

  /** Reports a failure on stderr: `softprompt: error: ...`, or `{"error": {...}}` with `--json`. */
  error(error: unknown, context?: string): void {
    this.#status?.clear();
    this.#status = undefined;
    const message = error instanceof Error ? error.message : String(error);
    const issues = error instanceof ValidationError || error instanceof UsageError ? error.issues : [];
    if (this.json) {
      const doc = { error: { code: errorCodeOf(error), message: context ? `${context}: ${message}` : message, ...(issues.length ? { issues } : {}) } };
      this.stderr.write(`${toJson(doc)}\n`);
      return;
    }
    const lines = issues.length > 1 ? `${context ? `${context}: ` : ''}invalid:\n${issues.map((i) => `  ${i}`).join('\n')}` : `${context ? `${context}: ` : ''}${message}`;
    this.stderr.write(`softprompt: error: ${lines}\n`);
  }
}

/** Writes `line` + newline, resolving once the stream accepts more. */
export function writeLine(stream: Writable, line: string): Promise<void> {
  if (stream.write(`${line}\n`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      stream.off('drain', onDrain);
      stream.off('error', done);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    stream.once('drain', onDrain);
    stream.once('error', done);
  });
}
