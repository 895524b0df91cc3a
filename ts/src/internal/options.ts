/**
 * `Softprompt.start()` options: the zod schema, its defaults, and the parsed shape the internals use.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { LogFunction, Logger, LogLevel } from '../core/logger.js';
import { parseOrThrow } from './validate.js';

export const logger = z.custom<Logger | LogFunction>(
  (v) =>
    typeof v === 'function' ||
    (typeof v === 'object' &&
      v !== null &&
      ['debug', 'info', 'warn', 'error'].every((k) => typeof (v as Record<string, unknown>)[k] === 'function')),
  { message: 'expected a function (level, message) => void or an object with debug/info/warn/error methods' },
);

export const positiveMs = z.number().int().positive();

/** Calls open at once per client, by default; more wait in the client (the worker queues at most 1,024). */
export const DEFAULT_MAX_IN_FLIGHT = 128;
export const maxInFlight = z.number().int().positive().default(DEFAULT_MAX_IN_FLIGHT);

/**
 * The schema of {@link DistributedOptions}. One node by default (`torchrun --standalone`); with
 * `rdzvEndpoint`, static rendezvous, which puts global rank 0 (the worker the SDK speaks to) on node 0.
 */
export const distributedOptionsSchema = z
  .strictObject({
    nprocPerNode: z.number().int().min(1),
    nnodes: z.number().int().min(1).default(1),
    nodeRank: z.number().int().min(0).default(0),
    rdzvEndpoint: z.string().min(1).optional(),
    rdzvId: z.string().min(1).optional(),
    backend: z.enum(['auto', 'nccl', 'gloo']).default('auto'),
  })
  .superRefine((d, ctx) => {
    if (d.nnodes > 1 && d.rdzvEndpoint === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rdzvEndpoint'],
        message: `needed with nnodes ${d.nnodes}: HOST:PORT on this machine (node 0) that every node can reach`,
      });
    }
    if (d.nodeRank !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodeRank'],
        message: `must be 0, got ${d.nodeRank}: the SDK speaks to global rank 0, which runs on node 0; start the other nodes with torchrun (docs/distributed.md)`,
      });
    }
  });

/** The schema of {@link StartOptions}; unknown keys are errors so typos surface. */
export const startOptionsSchema = z.strictObject({
  python: z.string().min(1).optional(),
  workerPath: z
    .string()
    .min(1)
    .refine(isAbsolute, { message: 'expected an absolute path (the folder that holds softprompt_worker/)' })
    .refine((p) => existsSync(join(p, 'softprompt_worker', '__init__.py')), {
      message: 'no softprompt_worker package in this folder (expected softprompt_worker/__init__.py inside it)',
    })
    .optional(),
  env: z.record(z.string(), z.string()).optional(),
  transport: z.enum(['ipc', 'tcp']).default('ipc'),
  startTimeoutMs: positiveMs.default(120_000),
  requestTimeoutMs: positiveMs.optional(),
  maxInFlight,
  shutdownTimeoutMs: positiveMs.default(5_000),
  restart: z
    .strictObject({
      maxRestarts: z.number().int().nonnegative().default(3),
      backoffMs: z.number().int().nonnegative().default(500),
    })
    .default({ maxRestarts: 3, backoffMs: 500 }),
  logger: logger.optional(),
  distributed: distributedOptionsSchema.optional(),
  onLifecycle: z.custom<(event: LifecycleEvent) => void>((v) => typeof v === 'function', { message: 'expected a function' }).optional(),
});

/** Worker lifecycle notifications, delivered to `StartOptions.onLifecycle`. */
export type LifecycleEvent =
  | { readonly type: 'crash'; readonly exitCode: number | null; readonly signal: string | null; readonly stderrTail: string }
  | { readonly type: 'restart'; readonly attempt: number; readonly pid: number }
  | { readonly type: 'restart_failed'; readonly attempt: number; readonly error: Error };

/**
 * A data-parallel worker group (`StartOptions.distributed`, docs/distributed.md): the SDK starts it with
 * `python -m torch.distributed.run` and speaks to rank 0; training jobs run on every rank (DDP, one
 * micro-batch of `batchSize` rows per rank per step), everything else on rank 0.
 */
export interface DistributedOptions {
  /** Worker processes on this machine (torchrun `--nproc-per-node`): one per GPU, or CPU processes with gloo. */
  nprocPerNode: number;
  /** Machines in the group (default 1). More than one needs `rdzvEndpoint`; the other nodes are started with torchrun. */
  nnodes?: number;
  /** This machine's node rank: 0 (the default and the only value allowed), since rank 0 runs here. */
  nodeRank?: number;
  /** `HOST:PORT` on this machine that every node reaches (static rendezvous). Default: one node on a free local port. */
  rdzvEndpoint?: string;
  /** The run id all nodes pass to torchrun (`--rdzv-id`). */
  rdzvId?: string;
  /** Collective backend: `'auto'` (default: NCCL when the worker sees a GPU, else gloo), `'nccl'` or `'gloo'`. */
  backend?: 'auto' | 'nccl' | 'gloo';
}

/** DistributedOptions after validation and defaults. */
export type ResolvedDistributedOptions = z.output<typeof distributedOptionsSchema>;

/** Options of `Softprompt.start()`. Every field is optional. */
export interface StartOptions {
  /** Python interpreter. Default: `$SOFTPROMPT_PYTHON`, then the project's `.venv/bin/python`, then `python3`. */
  python?: string;
  /**
   * The folder that holds the worker's Python package (`softprompt_worker/`), put first on the
   * worker's `PYTHONPATH`. Default: `python/` in this package. Set it when this package's files are
   * not on disk as such, e.g. inside an Electron `app.asar`: unpack `python/**` (electron-builder
   * `asarUnpack`) and pass the `app.asar.unpacked/.../softprompt/python` folder (examples/electron-main.ts).
   */
  workerPath?: string;
  /** Extra environment variables for the worker (merged over `process.env`). */
  env?: Readonly<Record<string, string>>;
  /**
   * `'ipc'` (default: a Unix socket in a private 0700 folder under `<tmpdir>/sp-<uid>/`; refused when that
   * path is too long for a socket) or `'tcp'` (127.0.0.1, a kernel-chosen port, with a CURVE key pair made for
   * this worker and handed to it over stdin, so no other local user can connect).
   */
  transport?: 'ipc' | 'tcp';
  /** How long the worker may take to start and answer `hello`, in ms. Default 120000 (importing torch is slow). */
  startTimeoutMs?: number;
  /**
   * Default deadline of each call, in ms; a call's own `timeoutMs` wins. Default: none. Ops that report
   * progress (embed, rerank, evaluate, generate) apply it since the worker's last message, so a long
   * corpus still finishes while a stopped worker fails the call with `TimeoutError`. Training has none.
   */
  requestTimeoutMs?: number;
  /** Calls open at once; further calls wait in the client, in call order (their deadlines run). Default 128. */
  maxInFlight?: number;
  /** How long `close()` waits for a clean exit before SIGTERM, and again before SIGKILL, in ms. Default 5000. */
  shutdownTimeoutMs?: number;
  /** Restarting a crashed worker: at most `maxRestarts` times (default 3), waiting `backoffMs × 2^attempt` (default 500). */
  restart?: { maxRestarts?: number; backoffMs?: number };
  /** Where worker logs and SDK diagnostics go. Default: warnings and errors to `console.error`. */
  logger?: Logger | LogFunction;
  /** Train on several processes (and machines) with torch.distributed; see {@link DistributedOptions}. Default: one worker process. */
  distributed?: DistributedOptions;
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
