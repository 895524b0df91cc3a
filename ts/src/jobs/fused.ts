/**
 * `sp.trainMany(specs)`: several jobs on one frozen model, trained in shared forward/backward passes by one
 * `train_many` request (python/softprompt_worker/ops/train_many.py, training/fused.py).
 *
 * Each spec becomes a {@link TrainingJob} like `sp.train`'s: its own events, result, report, run directory and
 * checkpoints, and results equal to the job trained alone (up to float rounding). What the group shares is the
 * request: the rows of every job are uploaded first, then one `train_many` runs them all; each job ends on its
 * own (`job_end`), and `job.cancel()` stops that job alone. A spec that cannot fuse with the first (another
 * model or dtype, suffix or passage tuning, the same run directory) fails every job of the group with the
 * worker's reason before anything trains: fusion is asked for, never silently dropped.
 *
 * When the worker dies, every unfinished job emits `restarted` and the group resubmits them, each from its
 * last checkpoint on its saved rows (jobs/resume.ts), up to `maxResumes` times.
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError, ValidationError, WorkerCrashedError } from '../core/errors.js';
import type { StreamController } from '../core/event-stream.js';
import type { Rpc } from '../internal/rpc.js';
import { remoteErrorOf } from '../internal/transport.js';
import type { WireMap } from '../internal/wire.js';
import { DEFAULT_CHUNK_BYTES, type UploadedData, uploadData } from './data.js';
import { type TrainingEvent, type TrainingResult, decodeTrainingEvent, decodeTrainingResult } from './events.js';
import { type AfterJob, type TrainOptions, type TrainingJob, aborted, sharedJob } from './job.js';
import { type JobSpec, isJobSpec, trainBody } from './spec.js';
import { DEFAULT_MAX_RESUMES, type ResumePoint, inspectRun, newest, resumedBody } from './resume.js';
import { nonNegativeInt, positiveInt } from '../spec/schema.js';
import { parseOrThrow } from '../internal/validate.js';
import { MAX_FUSED_JOBS } from '../gen/schema/limits.js';

/** Options of `sp.trainMany(specs, options)`: those of `sp.train`, for the whole group. */
export type TrainManyOptions = TrainOptions;

/** One job of the group, as the group drives it. */
class Member {
  readonly jobId = randomUUID(); // tags this job's checkpoints and saved rows across its resumes
  out: StreamController<TrainingEvent, TrainingResult> | undefined;
  finished = false; // the worker ended it (job_end): a crash later does not resubmit it
  settled = false; // its TrainingJob has its result or error
  cancelled = false;
  seen: ResumePoint | undefined; // its latest checkpoint event
  from: ResumePoint | undefined; // where its current attempt resumed
  uploaded: UploadedData | undefined;
  cancelRemote: (() => void) | undefined; // set while a request runs it

  constructor(readonly spec: JobSpec) {}

  end(result: TrainingResult): void {
    if (this.settled) return;
    this.settled = true;
    this.out?.end(result);
  }

  fail(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.out?.fail(error);
  }
}

/**
 * Starts `specs` as one fused group on the worker behind `rpc`; `afterJob` runs for each job that ended with a
 * result (its run report). Throws `ValidationError` for a spec no builder made, naming its index.
 */
export function trainMany(rpc: Rpc, specs: readonly JobSpec[], options: TrainManyOptions = {}, afterJob?: AfterJob): TrainingJob[] {
  if (!Array.isArray(specs) || specs.length < 1 || specs.length > MAX_FUSED_JOBS) {
    throw new RangeError(`trainMany: expected 1..${MAX_FUSED_JOBS} job specs, got ${Array.isArray(specs) ? specs.length : typeof specs}`);
  }
  specs.forEach((spec, i) => {
    if (!isJobSpec(spec)) throw new ValidationError(`specs[${i}]: not a job spec; build one with promptTuning(...), prefixTuning(...) or pTuning(...)`);
  });
  const chunkBytes = parseOrThrow(positiveInt().optional(), options.uploadChunkBytes, 'options.uploadChunkBytes') ?? DEFAULT_CHUNK_BYTES;
  const maxResumes = parseOrThrow(nonNegativeInt().optional(), options.maxResumes, 'options.maxResumes') ?? DEFAULT_MAX_RESUMES;
  const members = specs.map((spec) => new Member(spec));
  let attached = 0;
  const jobs = members.map((member) =>
    sharedJob(rpc, member.spec, {
      attach: (out) => {
        member.out = out;
        attached += 1;
        if (attached === members.length) void run(rpc, members, { chunkBytes, maxResumes, signal: options.signal, afterJob });
      },
      cancel: () => {
        member.cancelled = true;
        member.cancelRemote?.();
      },
    }),
  );
  return jobs;
}

interface RunOptions {
  readonly chunkBytes: number;
  readonly maxResumes: number;
  readonly signal: AbortSignal | undefined;
  readonly afterJob: AfterJob | undefined;
}

/** Uploads, runs and (after a crash) resumes the group until every member ended. */
async function run(rpc: Rpc, members: Member[], options: RunOptions): Promise<void> {
  const { signal } = options;
  const uploads = new AbortController(); // aborted with the group's signal: stops uploads and restarts
  const onAbort = () => {
    uploads.abort();
    for (const m of members) {
      m.cancelled = true;
      m.cancelRemote?.();
    }
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  let crash: WorkerCrashedError | undefined;
  let resumes = 0;
  const reports: Promise<void>[] = [];
  try {
    for (;;) {
      const active = members.filter((m) => !m.finished && !m.settled);
      if (active.length === 0) return;
      try {
        const bodies = await Promise.all(active.map((m) => attemptBody(rpc, m, crash, resumes, options.chunkBytes, uploads.signal)));
        const live = active.filter((m, k) => {
          if (!m.cancelled) return true;
          bodies[k] = undefined; // cancelled while uploading or restarting: it ends without training
          m.fail(aborted(crash ? 'while its worker restarted' : 'before it started', crash !== undefined, newest(m.from, m.seen)));
          return false;
        });
        if (live.length === 0) return;
        await runOnce(rpc, live, bodies.filter((b): b is WireMap => b !== undefined), reports, options.afterJob);
        return;
      } catch (error) {
        if (!(error instanceof WorkerCrashedError) || resumes >= options.maxResumes) throw error;
        resumes += 1;
        crash = error;
        for (const m of members) m.uploaded = undefined; // the crashed worker lost them
      }
    }
  } catch (error) {
    const where = crash ? 'while its worker restarted' : 'while its rows were uploading';
    for (const m of members) m.fail(uploads.signal.aborted ? aborted(where, crash !== undefined, newest(m.from, m.seen), error) : (error as Error));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await Promise.all(reports);
    for (const m of members) if (m.uploaded) void m.uploaded.close();
  }
}

/** The `train` body of `member`'s next attempt: after a crash from its last checkpoint, on its saved rows. */
async function attemptBody(
  rpc: Rpc,
  member: Member,
  crash: WorkerCrashedError | undefined,
  attempt: number,
  chunkBytes: number,
  signal: AbortSignal,
): Promise<WireMap | undefined> {
  const { spec } = member;
  let saved: WireMap | undefined;
  if (crash !== undefined) {
    const state = await inspectRun(rpc, spec.runDir, member.jobId, signal);
    member.from = newest(member.seen, state.checkpoint) ?? member.from;
    saved = state.data;
    member.out?.event({ type: 'restarted', attempt, fromCheckpoint: member.from?.path ?? null, fromStep: member.from?.step ?? 0, cause: crash });
  }
  if (member.cancelled) return undefined;
  if (saved === undefined) {
    member.uploaded = await uploadData(rpc, spec.data, { chunkBytes, signal });
  }
  const first = { ...trainBody(spec, saved ?? member.uploaded!.body), job_id: member.jobId };
  return crash === undefined ? first : resumedBody(spec, first, member.from);
}

/** One `train_many` request of `live` (part `k` is `live[k]`), until its reply. */
async function runOnce(rpc: Rpc, live: Member[], bodies: WireMap[], reports: Promise<void>[], afterJob: AfterJob | undefined): Promise<void> {
  const { stream, cancelPart } = rpc.streamParts('train_many', { jobs: bodies }, undefined, {
    decodeEvent: (e) => e.body,
    decodeFinal: (r) => r.body,
  });
  live.forEach((m, k) => {
    m.cancelRemote = () => cancelPart(k);
    if (m.cancelled) cancelPart(k);
  });
  try {
    for await (const raw of stream) {
      const { job, ...body } = raw as Record<string, unknown>;
      const member = typeof job === 'number' ? live[job] : undefined;
      if (member === undefined) throw new ProtocolError(`train_many event without a known job: ${JSON.stringify(raw).slice(0, 120)}`);
      if (body.event === 'job_end') {
        reports.push(ended(rpc, member, body, afterJob));
        continue;
      }
      const event = decodeTrainingEvent(body as WireMap);
      if (event === undefined) continue;
      if (event.type === 'checkpoint') member.seen = { path: event.path, step: event.step };
      member.out?.event(event);
    }
    await stream.result();
  } finally {
    for (const m of live) m.cancelRemote = undefined;
  }
}

/** A member's `job_end`: its result (after its report is written) or its error. */
async function ended(rpc: Rpc, member: Member, body: Record<string, unknown>, afterJob: AfterJob | undefined): Promise<void> {
  member.finished = true;
  const { error, reply } = body as { error?: WireMap; reply?: WireMap };
  if (error !== undefined) {
    member.fail(remoteErrorOf('train_many', error));
    return;
  }
  try {
    const result = decodeTrainingResult(reply ?? {});
    const report = await afterJob?.(rpc, member.spec.runDir); // never throws: a failure is logged
    member.end(report === undefined ? result : { ...result, report });
  } catch (cause) {
    member.fail(cause as Error);
  }
}
