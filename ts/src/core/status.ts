/**
 * The worker's `status` reply (WIRE.md, "Scheduling"): what it holds and does. Answered by the worker's
 * socket loop, so it comes back at once however busy the device is.
 */
import { z } from 'zod';
import { toCamel } from '../spec/case.js';
import { computeSchema, type WorkerHealth } from './health.js';

/** A frozen base model the worker holds (loaded once per model, dtype and device, shared by every job and prompt). */
export interface LoadedModel {
  /** The model spec as the worker resolved it (`nameOrPath` / `tiny` / `embedded`, `device`, `dtype`, ...). */
  readonly model: Readonly<Record<string, unknown>>;
  readonly device: string;
  readonly dtype: string;
  /** Its weights and buffers, in bytes. */
  readonly bytes: number;
}

/** A training job the worker runs or has queued. */
export interface JobStatus {
  /** The `train` request's id on its client's connection. */
  readonly requestId: number;
  /** The client that submitted it (`''`: a client that named none). */
  readonly client: string;
  readonly state: 'running' | 'queued';
  readonly jobId: string | null;
  readonly runDir: string | null;
  readonly method: string | null;
  /** Time since it was submitted, in ms. */
  readonly ageMs: number;
  /** The last reported optimizer step, once it has started. */
  readonly step?: number;
  readonly totalSteps?: number;
  /** The last reported training loss. */
  readonly loss?: number;
}

/** What runs and waits on a worker, and what it holds. */
export interface WorkerStatus {
  readonly models: readonly LoadedModel[];
  /** Running jobs first, then queued ones in the order they will start. */
  readonly jobs: readonly JobStatus[];
  /** Requests waiting: inference ops for the inference lane, training jobs for a free slot. */
  readonly queues: { readonly inference: number; readonly training: number };
  /** Training jobs the worker runs at once (`--max-training-jobs`). */
  readonly maxTrainingJobs: number;
  /** Who computes now (`'inference'` or `'train <id>'`, `null` when idle) and who waits for a turn. */
  readonly device: {
    readonly holder: string | null;
    readonly waiting: { readonly inference: number; readonly training: number };
    /** Times a training job handed the device to waiting work since the worker started. */
    readonly handovers: number;
  };
  readonly compute: WorkerHealth;
}

const count = z.number().int().nonnegative();
const jobSchema = z
  .object({
    request_id: z.number().int(),
    client: z.string(),
    state: z.enum(['running', 'queued']),
    job_id: z.string().nullable().default(null),
    run_dir: z.string().nullable().default(null),
    method: z.string().nullable().default(null),
    age_s: z.number(),
    step: count.nullable().optional(),
    total_steps: count.nullable().optional(),
    loss: z.number().nullable().optional(),
  })
  .transform((j): JobStatus => ({
    requestId: j.request_id,
    client: j.client,
    state: j.state,
    jobId: j.job_id,
    runDir: j.run_dir,
    method: j.method,
    ageMs: Math.round(j.age_s * 1000),
    ...(j.step != null ? { step: j.step } : {}),
    ...(j.total_steps != null ? { totalSteps: j.total_steps } : {}),
    ...(j.loss != null ? { loss: j.loss } : {}),
  }));

export const statusSchema = z
  .object({
    models: z.array(z.object({ model: z.record(z.string(), z.unknown()), device: z.string(), dtype: z.string(), bytes: count })),
    jobs: z.array(jobSchema),
    queues: z.object({ inference: count, training: count }),
    max_training_jobs: count,
    device: z.object({
      holder: z.string().nullable().default(null),
      waiting: z.object({ inference: count, training: count }).default({ inference: 0, training: 0 }),
      handovers: count.default(0),
    }),
    compute: computeSchema,
  })
  .transform(
    (s): WorkerStatus => ({
      models: s.models.map((m) => ({ ...m, model: toCamel(m.model) as Record<string, unknown> })),
      jobs: s.jobs,
      queues: s.queues,
      maxTrainingJobs: s.max_training_jobs,
      device: s.device,
      compute: s.compute,
    }),
  );
