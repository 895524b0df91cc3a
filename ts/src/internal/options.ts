/**
 * `Softprompt.start()` options: the zod schema, its defaults, and the parsed shape the internals use.
 * The public option types are in core/start-options.ts.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { LogFunction, Logger, LogLevel } from '../core/logger.js';
import type { LifecycleEvent } from '../core/start-options.js';
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

/** DistributedOptions after validation and defaults. */
export type ResolvedDistributedOptions = z.output<typeof distributedOptionsSchema>;

/** StartOptions after validation and defaults. */
export type ResolvedStartOptions = z.output<typeof startOptionsSchema>;

/** Validates user options; throws {@link ValidationError} naming each bad field (`options.x: ...`). */
export function parseStartOptions(options: unknown): ResolvedStartOptions {
  return parseOrThrow(startOptionsSchema, options ?? {}, 'options');
}

export type { LogLevel };
