/**
 * `Softprompt.start()` options: the zod schema, its defaults, and the parsed shape the internals use.
 */
import { z } from 'zod';
import type { LogFunction, Logger, LogLevel } from '../core/logger.js';
import { parseOrThrow } from './validate.js';

const logger = z.custom<Logger | LogFunction>(
  (v) =>
    typeof v === 'function' ||
    (typeof v === 'object' &&
      v !== null &&
      ['debug', 'info', 'warn', 'error'].every((k) => typeof (v as Record<string, unknown>)[k] === 'function')),
  { message: 'expected a function (level, message) => void or an object with debug/info/warn/error methods' },
);

const positiveMs = z.number().int().positive();

/** The schema of {@link StartOptions}; unknown keys are errors so typos surface. */
export const startOptionsSchema = z.strictObject({
  python: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  transport: z.enum(['ipc', 'tcp']).default('ipc'),
  startTimeoutMs: positiveMs.default(120_000),
  requestTimeoutMs: positiveMs.optional(),
  shutdownTimeoutMs: positiveMs.default(5_000),
  restart: z
    .strictObject({
      maxRestarts: z.number().int().nonnegative().default(3),
      backoffMs: z.number().int().nonnegative().default(500),
    })
    .default({ maxRestarts: 3, backoffMs: 500 }),
  logger: logger.optional(),
  onLifecycle: z.custom<(event: LifecycleEvent) => void>((v) => typeof v === 'function', { message: 'expected a function' }).optional(),
});

/** Worker lifecycle notifications, delivered to `StartOptions.onLifecycle`. */
export type LifecycleEvent =
  | { readonly type: 'crash'; readonly exitCode: number | null; readonly signal: string | null; readonly stderrTail: string }
  | { readonly type: 'restart'; readonly attempt: number; readonly pid: number }
  | { readonly type: 'restart_failed'; readonly attempt: number; readonly error: Error };

/** Options of `Softprompt.start()`. Every field is optional. */
export interface StartOptions {
  /** Python interpreter. Default: `$SOFTPROMPT_PYTHON`, then the project's `.venv/bin/python`, then `python3`. */
  python?: string;
  /** Extra environment variables for the worker (merged over `process.env`). */
  env?: Readonly<Record<string, string>>;
  /** `'ipc'` (a Unix socket in a private 0700 directory; default) or `'tcp'` (127.0.0.1, a kernel-chosen port). */
  transport?: 'ipc' | 'tcp';
  /** How long the worker may take to start and answer `hello`, in ms. Default 120000 (importing torch is slow). */
  startTimeoutMs?: number;
  /** Default deadline of each call, in ms; a call's own `timeoutMs` wins. Default: none. */
  requestTimeoutMs?: number;
  /** How long `close()` waits for a clean exit before SIGTERM, and again before SIGKILL, in ms. Default 5000. */
  shutdownTimeoutMs?: number;
  /** Restarting a crashed worker: at most `maxRestarts` times (default 3), waiting `backoffMs × 2^attempt` (default 500). */
  restart?: { maxRestarts?: number; backoffMs?: number };
  /** Where worker logs and SDK diagnostics go. Default: warnings and errors to `console.error`. */
  logger?: Logger | LogFunction;
  /** Called on worker crash and restart. */
  onLifecycle?: (event: LifecycleEvent) => void;
}

/** StartOptions after validation and defaults. */
export type ResolvedStartOptions = z.output<typeof startOptionsSchema>;

/** Validates user options; throws {@link ValidationError} naming each bad field (`options.x: ...`). */
export function parseStartOptions(options: unknown): ResolvedStartOptions {
  return parseOrThrow(startOptionsSchema, options ?? {}, 'options');
}

export type { LogLevel };
