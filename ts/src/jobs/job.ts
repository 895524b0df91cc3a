/**
 * `sp.train(spec)`: a running training job. Rows given from TS are uploaded first (in chunks), then
 * one streaming `train` request runs the job (python/softprompt_worker/ops/train.py). When the worker
 * dies, the job resumes by itself in the restarted worker from its last checkpoint (jobs/resume.ts).
 */
import { randomUUID } from 'node:crypto';
import { AbortError, ClientClosedError, WorkerCrashedError } from '../core/errors.js';
import { EventStream, type StreamController } from '../core/event-stream.js';
import type { Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';
import { DEFAULT_CHUNK_BYTES, type UploadedData, uploadData } from './data.js';
import { type TrainingEvent, type TrainingResult, decodeTrainingEvent, decodeTrainingResult } from './events.js';
import { type JobSpec, assertJobSpec, trainBody } from './spec.js';
import { nonNegativeInt, positiveInt } from '../spec/schema.js';
import { DEFAULT_MAX_RESUMES, type ResumePoint, inspectRun, newest, resumedBody } from './resume.js';
import { parseOrThrow } from '../internal/validate.js';

/** Options of `sp.train(spec, options)`. */
export interface TrainOptions {
  /**
   * Aborting stops the job like {@link TrainingJob.cancel}: the worker writes a final checkpoint and
   * `result()` resolves with status `'cancelled'` (it rejects with `AbortError` only when the abort
   * comes while no training runs: rows still uploading, or a crashed worker restarting; the error
   * then names the checkpoint to resume from).
   */
  readonly signal?: AbortSignal;
  /** Bytes of rows per `data_append` message when uploading `{ rows }` data. Default 256 KiB. */
  readonly uploadChunkBytes?: number;
  /**
   * How often the job resumes by itself after its worker died (each time from its last checkpoint,
   * in the worker the client restarted; a `restarted` event says so). Past it the job fails with the
   * {@link WorkerCrashedError}. Default 3; 0 fails at the first crash.
   */
  readonly maxResumes?: number;
}

/**
 * What runs after a job ends with a result (the client passes the run-report writer,
 * reports/job-report.ts, so this layer does not import the reports): resolves with the path of what it
 * wrote, which becomes `result().report`, or `undefined`. It must never throw: it logs its failures.
 */
export type AfterJob = (rpc: Rpc, runDir: string) => Promise<string | undefined>;

/**
 * How a job of `sp.trainMany` runs: the group's one `train_many` request feeds it (jobs/fused.ts), instead
 * of a `train` request of its own.
 */
export interface SharedRun {
  /** Starts feeding `out`: the job's events, then its result or error. */
  attach(out: StreamController<TrainingEvent, TrainingResult>): void;
  /** Asks the worker to stop this job alone (the group's others go on). */
  cancel(): void;
}

let construct: (rpc: Rpc, spec: JobSpec, options: TrainOptions, afterJob: AfterJob | undefined, shared?: SharedRun) => TrainingJob;

/**
 * A training job running in the worker.
 *
 * - `for await (const e of job.events())` (or of `job` itself) yields {@link TrainingEvent}s; the
 *   events are consumed once. Leaving the loop early cancels the job.
 * - `await job.result()` resolves when the job ends: `status` is `'completed'` or `'cancelled'`, and
 *   `checkpoint` is a usable, resumable checkpoint either way.
 * - When it ends, the job writes `<runDir>/report.html` (charts, environment, timings; see
 *   reports/write.ts) and `result().report` is its path; a report that cannot be written is logged as
 *   a warning and never fails the job. For a failed run, call `writeRunReport(runDir)` yourself.
 * - `job.cancel()` (or the `signal` given to `sp.train`) asks the worker to stop after the current
 *   micro-batch; the result follows.
 * - When the worker dies (killed, out of host memory, a segfault), the job emits a `restarted` event,
 *   waits for the client's restart of the worker and goes on from its last checkpoint on the rows the
 *   worker saved in `<runDir>/data/` (no second upload), up to `maxResumes` times. On the CPU the
 *   resumed run ends exactly where the uninterrupted one would (test/ts/integration/crash-resume.test.ts).
 * - Failures (bad data with its `file:line`, an unknown model, a full disk, a worker that crashed more
 *   than `maxResumes` times) are thrown as typed `SoftpromptError`s from the loop and from `result()`.
 *
 * @example
 * const job = sp.train(spec, { signal: AbortSignal.timeout(3_600_000) });
 * for await (const e of job.events()) if (e.type === 'step') console.log(e.step, e.loss);
 * const { status, checkpoint } = await job.result();
 */
export class TrainingJob implements AsyncIterable<TrainingEvent> {
  /** The spec this job runs. */
  readonly spec: JobSpec;
  readonly #stream: EventStream<TrainingEvent, TrainingResult>;
  readonly #upload = new AbortController();
  #remote: EventStream<TrainingEvent | undefined, TrainingResult> | undefined;
  #cancelled = false;
  readonly #afterJob: AfterJob | undefined;
  readonly #shared: SharedRun | undefined;

  private constructor(rpc: Rpc, spec: JobSpec, options: TrainOptions, afterJob: AfterJob | undefined, shared?: SharedRun) {
    this.spec = spec;
    this.#afterJob = afterJob;
    this.#shared = shared;
    if (shared !== undefined) {
      this.#stream = new EventStream((c) => shared.attach(c), () => this.#cancel());
      return;
    }
    const chunkBytes = parseOrThrow(positiveInt().optional(), options.uploadChunkBytes, 'options.uploadChunkBytes');
    const maxResumes = parseOrThrow(nonNegativeInt().optional(), options.maxResumes, 'options.maxResumes');
    assertJobSpec(spec); // before anything runs
    let controller!: StreamController<TrainingEvent, TrainingResult>;
    this.#stream = new EventStream((c) => (controller = c), () => this.#cancel());
    const { signal } = options;
    const onAbort = () => this.#stream.cancel();
    if (signal?.aborted) this.#stream.cancel();
    else signal?.addEventListener('abort', onAbort, { once: true });
    void this.#run(rpc, controller, chunkBytes ?? DEFAULT_CHUNK_BYTES, maxResumes ?? DEFAULT_MAX_RESUMES).finally(() =>
      signal?.removeEventListener('abort', onAbort),
    );
  }

  /** The job's events, in order (data, started, step / eval / checkpoint ..., done; restarted after a crash). Consumed once. */
  events(): AsyncIterable<TrainingEvent> {
    return this.#stream;
  }

  [Symbol.asyncIterator](): AsyncIterator<TrainingEvent> {
    return this.#stream[Symbol.asyncIterator]();
  }

  /** How the job ended. Called without iterating, it drops the events. */
  result(): Promise<TrainingResult> {
    return this.#stream.result();
  }

  /** Asks the worker to stop; `result()` then resolves with status `'cancelled'` and a checkpoint. */
  cancel(): void {
    this.#stream.cancel();
  }

  /** True once the job has ended (result or error). */
  get done(): boolean {
    return this.#stream.done;
  }

  #cancel(): void {
    this.#shared?.cancel();
    this.#cancelled = true;
    this.#upload.abort();
    this.#remote?.cancel();
  }

  async #run(rpc: Rpc, out: StreamController<TrainingEvent, TrainingResult>, chunkBytes: number, maxResumes: number): Promise<void> {
    const jobId = randomUUID(); // tags this job's checkpoints and saved rows across its resumes
    let uploaded: UploadedData | undefined;
    let crash: WorkerCrashedError | undefined; // the latest crash, while the job recovers from it
    let seen: ResumePoint | undefined; // the latest checkpoint event
    let from: ResumePoint | undefined;
    let resumes = 0;
    try {
      for (;;) {
        try {
          let saved: WireMap | undefined;
          if (crash !== undefined) {
            const state = await inspectRun(rpc, this.spec.runDir, jobId, this.#upload.signal).catch((error: unknown) => {
              throw this.#cancelled ? aborted('while its worker restarted', true, newest(from, seen), error) : error;
            });
            from = newest(seen, state.checkpoint) ?? from;
            saved = state.data;
            out.event({ type: 'restarted', attempt: resumes, fromCheckpoint: from?.path ?? null, fromStep: from?.step ?? 0, cause: crash });
          }
          if (saved === undefined) {
            try {
              uploaded = await uploadData(rpc, this.spec.data, { signal: this.#upload.signal, chunkBytes });
            } catch (error) {
              throw this.#cancelled ? aborted('while its rows were uploading', crash !== undefined, from, error) : error;
            }
          }
          if (this.#cancelled) throw aborted(crash ? 'while its worker restarted' : 'before it started', crash !== undefined, from);
          const first = { ...trainBody(this.spec, saved ?? uploaded!.body), job_id: jobId };
          const body = crash === undefined ? first : resumedBody(this.spec, first, from);
          const remote = rpc.stream('train', body, undefined, {
            decodeEvent: (e) => decodeTrainingEvent(e.body),
            decodeFinal: (r) => decodeTrainingResult(r.body),
          });
          this.#remote = remote;
          for await (const event of remote) {
            if (event === undefined) continue;
            if (event.type === 'checkpoint') seen = { path: event.path, step: event.step };
            out.event(event);
          }
          const result = await remote.result();
          const report = await this.#afterJob?.(rpc, this.spec.runDir); // never throws: a failure is logged
          out.end(report === undefined ? result : { ...result, report });
          return;
        } catch (error) {
          if (!(error instanceof WorkerCrashedError) || this.#cancelled || resumes >= maxResumes) throw error;
          resumes += 1;
          crash = error;
          uploaded = undefined;
        }
      }
    } catch (error) {
      if (error instanceof WorkerCrashedError || error instanceof ClientClosedError) uploaded = undefined;
      out.fail(error as Error);
    } finally {
      // The worker copied the rows when the job started; free them (a crashed worker lost them anyway).
      if (uploaded) void uploaded.close();
    }
  }

  static {
    construct = (rpc, spec, options, afterJob, shared) => new TrainingJob(rpc, spec, options, afterJob, shared);
  }
}

/**
 * The AbortError of a job cancelled before its (re)submission: `where` it was, and the checkpoint to
 * continue from when one exists.
 */
export function aborted(where: string, crashed: boolean, checkpoint: ResumePoint | undefined, cause?: unknown): AbortError {
  const next = checkpoint
    ? `; continue it with resumeFrom: ${JSON.stringify(checkpoint.path)} (step ${checkpoint.step})`
    : crashed ? '; it had written no checkpoint' : '; nothing was trained';
  return new AbortError(`training was cancelled ${where}${next}`, cause === undefined ? undefined : { cause });
}

/**
 * Starts `spec` on the worker behind `rpc`; `afterJob` runs once it ended with a result (the client's
 * run report). Throws `ValidationError` for a spec no builder made.
 */
export function train(rpc: Rpc, spec: JobSpec, options: TrainOptions = {}, afterJob?: AfterJob): TrainingJob {
  return construct(rpc, spec, options, afterJob);
}

/** A job of a `sp.trainMany` group, fed by `shared` (jobs/fused.ts); `spec` was checked by the group. */
export function sharedJob(rpc: Rpc, spec: JobSpec, shared: SharedRun): TrainingJob {
  return construct(rpc, spec, {}, undefined, shared);
}
