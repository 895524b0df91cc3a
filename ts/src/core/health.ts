/**
 * The worker's `health` reply (WIRE.md, "Control path"): whether its compute thread still shows life.
 * `ping` is answered by the worker's socket loop, so it cannot tell a stuck compute thread (a hung read,
 * a hung kernel) from a busy one; `health` can.
 */
import { z } from 'zod';

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

/** The worker's compute snapshot (`health`, `status`) as it comes over the wire. */
export const computeSchema = z
  .object({
    state: z.enum(['idle', 'busy']),
    op: z.string().nullable(),
    busy_s: z.number(),
    since_beat_s: z.number(),
    stuck: z.boolean(),
  })
  .transform(
    (c): WorkerHealth => ({
      state: c.state,
      op: c.op,
      busyMs: Math.round(c.busy_s * 1000),
      sinceBeatMs: Math.round(c.since_beat_s * 1000),
      stuck: c.stuck,
    }),
  );

export const healthSchema = z.object({ compute: computeSchema }).transform(({ compute }) => compute);
