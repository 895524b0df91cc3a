/**
 * The worker's `status` reply (WIRE.md, "Scheduling"): what it holds and does. Answered by the worker's
 * socket loop, so it comes back at once however busy the device is.
 */
import { type StatusReply, statusReplySchema } from '../gen/schema/status-reply.js';
import { type Camel, camelized, toCamel } from '../spec/case.js';
import type { Same } from '../spec/schema.js';
import { toHealth, type WorkerHealth } from './health.js';

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

/** Merged runs of cross-request batching (WIRE.md, "Scheduling", cross-request batching) and the requests they answered. */
export interface MergedCounts {
  readonly runs: number;
  readonly requests: number;
}

/** The inference lane's cross-request batching: its bounds and what it merged since the worker started. */
export interface BatchingStatus extends MergedCounts {
  /** Rows a merged run holds at most (`--max-batch-rows`). */
  readonly maxRows: number;
  /** How long the lane waits for more requests to merge (`--batch-wait-ms`). */
  readonly waitMs: number;
  /** The same counts per op (`embed`, `rerank`, `classify`, `generate`). */
  readonly ops: Readonly<Record<string, MergedCounts>>;
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
  /** Cross-request batching; absent from workers older than it. */
  readonly batching?: BatchingStatus;
}

type Wire = StatusReply;
// The documented types are the worker's (proto/schema/status_reply.json) with durations in ms, or this fails
// to compile (a job's op is not shown).
true satisfies Same<LoadedModel, Camel<Wire['models'][number], 'model'>>;
true satisfies Same<Omit<JobStatus, 'ageMs'>, Omit<Camel<Wire['jobs'][number]>, 'ageS' | 'op'>>;
true satisfies Same<Omit<WorkerStatus, 'models' | 'jobs' | 'compute'>, Omit<Camel<Wire, 'ops'>, 'models' | 'jobs' | 'compute'>>;

export const statusSchema = statusReplySchema.transform(
  (s): WorkerStatus => ({
    models: s.models.map((m) => ({ ...m, model: toCamel(m.model) as Record<string, unknown> })),
    jobs: s.jobs.map(({ op: _, age_s, ...job }) => ({ ...camelized(job), ageMs: Math.round(age_s * 1000) })),
    queues: s.queues,
    maxTrainingJobs: s.max_training_jobs,
    device: s.device,
    compute: toHealth(s.compute),
    ...(s.batching ? { batching: camelized(s.batching, ['ops']) } : {}),
  }),
);
