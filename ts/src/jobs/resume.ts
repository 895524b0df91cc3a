/**
 * Crash recovery of a {@link TrainingJob} (jobs/job.ts): where a job picks up after its worker died.
 *
 * The worker saves a job's resolved rows in `<runDir>/data/` before training and tags each checkpoint
 * with the job's id (python/softprompt_worker/runs.py). After a crash the job asks the restarted worker
 * (`run_inspect`) for the newest checkpoint of that id that verifies and for the saved rows whose
 * hashes match, and submits the job again:
 *
 * - from the newer of that checkpoint and the last `checkpoint` event it saw (the event comes after
 *   the write, so what it names is on disk); with neither, from the spec's own `resumeFrom`, or from
 *   scratch;
 * - on the saved rows (`{ path }` sources), so rows sent from TS need no second upload and the run
 *   sees the same rows and train/eval split; without saved rows the spec's data is uploaded again.
 */
import { z } from 'zod';
import { ProtocolError } from '../core/errors.js';
import { runInspectReplySchema } from '../gen/schema/run-inspect-reply.js';
import type { RunInspectRequest } from '../gen/schema/run-inspect-request.js';
import type { Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';
import { toSnake } from '../spec/case.js';
import type { JobSpec } from './spec.js';

/** `TrainOptions.maxResumes` when not given. */
export const DEFAULT_MAX_RESUMES = 3;

/** A checkpoint a resumed job can start from. */
export interface ResumePoint {
  readonly path: string;
  readonly step: number;
}

/** What a job left in its run directory, as the worker verified it. */
export interface RunState {
  readonly checkpoint: ResumePoint | undefined;
  /** The `data` body of a resumed `train` request, reading the saved rows; undefined when none are valid. */
  readonly data: WireMap | undefined;
}

/** Asks the worker (waiting for a restart in progress) what job `jobId` left in `runDir`. */
export async function inspectRun(rpc: Rpc, runDir: string, jobId: string, signal: AbortSignal): Promise<RunState> {
  const body = toSnake({ runDir, jobId } satisfies RunInspectRequest) as WireMap;
  const reply = await rpc.request('run_inspect', body, undefined, { signal });
  const parsed = runInspectReplySchema.safeParse(reply.body);
  if (!parsed.success) throw new ProtocolError(`run_inspect reply: ${z.prettifyError(parsed.error)}`);
  const { checkpoint, data } = parsed.data;
  return {
    checkpoint: checkpoint ?? undefined,
    data:
      data === null
        ? undefined
        : {
            train: { path: data.train },
            ...(data.eval_rows > 0 ? { eval: { path: data.eval } } : {}),
            on_bad_row: 'fail', // the saved rows are the ones that passed
          },
  };
}

/** The later of two resume points (by step); `a` on a tie. */
export function newest(a: ResumePoint | undefined, b: ResumePoint | undefined): ResumePoint | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.step > a.step ? b : a;
}

/**
 * The `train` body of a resumed attempt: `body` with `resume_from` pointing at `from` (or the spec's
 * own `resumeFrom`, or nothing: start over).
 */
export function resumedBody(spec: JobSpec, body: WireMap, from: ResumePoint | undefined): WireMap {
  const { resume_from: _omit, ...rest } = body as Record<string, unknown>;
  const resumeFrom = from?.path ?? spec.resumeFrom;
  return { ...rest, ...(resumeFrom === undefined ? {} : { resume_from: resumeFrom }) } as WireMap;
}
