/**
 * `sp.train(spec)`: a running training job. Rows given from TS are uploaded first (in chunks), then
 * one streaming `train` request runs the job (python/softprompt_worker/ops/train.py).
 */
import { AbortError, ClientClosedError, WorkerCrashedError } from '../core/errors.js';
import { EventStream, type StreamController } from '../core/event-stream.js';
import type { Rpc } from '../internal/rpc.js';
import { DEFAULT_CHUNK_BYTES, type UploadedData, uploadData } from './data.js';
import { type TrainingEvent, type TrainingResult, decodeTrainingEvent, decodeTrainingResult } from './events.js';
import { type JobSpec, assertJobSpec, trainBody } from './spec.js';
import { positiveInt } from './schema.js';
import { parseOrThrow } from '../internal/validate.js';
import { reportAfterJob } from '../reports/job-report.js';

/** Options of `sp.train(spec, options)`. */
export interface TrainOptions {
  /**
   * Aborting stops the job like {@link TrainingJob.cancel}: the worker writes a final checkpoint and
   * `result()` resolves with status `'cancelled'` (it rejects with `AbortError` only when the abort
   * comes before training started, i.e. while rows are still uploading).
   */
  readonly signal?: AbortSignal;
  /** Bytes of rows per `data_append` message when uploading `{ rows }` data. Default 256 KiB. */
  readonly uploadChunkBytes?: number;
}

let construct: (rpc: Rpc, spec: JobSpec, options: TrainOptions) => TrainingJob;

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
 * - Failures (bad data with its `file:line`, an unknown model, a crashed worker) are thrown as typed
 *   `SoftpromptError`s from the loop and from `result()`.
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

  private constructor(rpc: Rpc, spec: JobSpec, options: TrainOptions) {
    this.spec = spec;
    const chunkBytes = parseOrThrow(positiveInt().optional(), options.uploadChunkBytes, 'options.uploadChunkBytes');
    assertJobSpec(spec); // before anything runs
    let controller!: StreamController<TrainingEvent, TrainingResult>;
    this.#stream = new EventStream((c) => (controller = c), () => this.#cancel());
    const { signal } = options;
    const onAbort = () => this.#stream.cancel();
    if (signal?.aborted) this.#stream.cancel();
    else signal?.addEventListener('abort', onAbort, { once: true });
    void this.#run(rpc, controller, chunkBytes ?? DEFAULT_CHUNK_BYTES).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  /** The job's events, in order (data, started, step / eval / checkpoint ..., done). Consumed once. */
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
    this.#cancelled = true;
    this.#upload.abort();
    this.#remote?.cancel();
  }

  async #run(rpc: Rpc, out: StreamController<TrainingEvent, TrainingResult>, chunkBytes: number): Promise<void> {
    let uploaded: UploadedData | undefined;
    let crashed = false;
    try {
      try {
        uploaded = await uploadData(rpc, this.spec.data, { signal: this.#upload.signal, chunkBytes });
      } catch (error) {
        throw this.#cancelled ? new AbortError('training was cancelled while its rows were uploading; nothing was trained', { cause: error }) : error;
      }
      if (this.#cancelled) throw new AbortError('training was cancelled before it started; nothing was trained');
      const remote = rpc.stream('train', trainBody(this.spec, uploaded.body), undefined, {
        decodeEvent: (e) => decodeTrainingEvent(e.body),
        decodeFinal: (r) => decodeTrainingResult(r.body),
      });
      this.#remote = remote;
      for await (const event of remote) if (event !== undefined) out.event(event);
      const result = await remote.result();
      const report = await reportAfterJob(rpc, this.spec.runDir); // never throws: a failure is logged
      out.end(report === undefined ? result : { ...result, report });
    } catch (error) {
      crashed = error instanceof WorkerCrashedError || error instanceof ClientClosedError;
      out.fail(error as Error);
    } finally {
      // The worker copied the rows when the job started; free them (a crashed worker lost them anyway).
      if (uploaded && !crashed) void uploaded.close();
    }
  }

  static {
    construct = (rpc, spec, options) => new TrainingJob(rpc, spec, options);
  }
}

/** Starts `spec` on the worker behind `rpc`. Throws `ValidationError` for a spec no builder made. */
export function train(rpc: Rpc, spec: JobSpec, options: TrainOptions = {}): TrainingJob {
  return construct(rpc, spec, options);
}
