/**
 * The worker's `health` reply (WIRE.md, "Control path"): whether its compute thread still shows life.
 * `ping` is answered by the worker's socket loop, so it cannot tell a stuck compute thread (a hung read,
 * a hung kernel) from a busy one; `health` can.
 */
import { type HealthReplyCompute } from '../gen/schema/health-reply-compute.js';
import { healthReplySchema } from '../gen/schema/health-reply.js';
import { type Camel } from '../spec/case.js';
import type { Same } from '../spec/schema.js';

/** What the worker's compute thread does, and when it last showed life. */
export interface WorkerHealth {
  /** `'idle'` (waiting for work) or `'busy'` (running `op`). */
  readonly state: 'idle' | 'busy';
  /** The op running, when busy. */
  readonly op: string | null;
  /** How long the current op has run, in ms (0 when idle). */
  readonly busyMs: number;
  /** Time since the compute thread last beat, in ms (it beats each second when idle, and on each event or cancel check of a running op). */
  readonly sinceBeatMs: number;
  /** True when `sinceBeatMs` is past `stuckAfterMs`: the compute thread is stuck, not merely busy. */
  readonly stuck: boolean;
}

// The documented type is the worker's (proto/schema/health_reply_compute.json) with its durations in ms, or this
// fails to compile (the snapshot's request id is not shown).
true satisfies Same<Omit<WorkerHealth, 'busyMs' | 'sinceBeatMs'>, Omit<Camel<HealthReplyCompute>, 'busyS' | 'sinceBeatS' | 'requestId'>>;

/** The worker's compute snapshot (`health`, `status`) as it comes over the wire → {@link WorkerHealth}. */
export function toHealth(c: HealthReplyCompute): WorkerHealth {
  return { state: c.state, op: c.op, busyMs: Math.round(c.busy_s * 1000), sinceBeatMs: Math.round(c.since_beat_s * 1000), stuck: c.stuck };
}

export const healthSchema = healthReplySchema.transform(({ compute }) => toHealth(compute));
