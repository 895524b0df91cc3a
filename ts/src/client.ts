/**
 * The client: owns one managed Python worker (`Softprompt.start`), or uses a shared one on another
 * machine (`Softprompt.connect`), and exposes its operations the same way for both.
 *
 * Method modules (jobs/, inference) are functions over the internal {@link Rpc}; the client's
 * methods delegate to them in one line each, so this file stays a table of contents.
 */
import type { Capabilities } from './core/capabilities.js';
import { capabilitiesSchema } from './core/capabilities.js';
import { type WorkerHealth, healthSchema } from './core/health.js';
import { type WorkerStatus, statusSchema } from './core/status.js';
import type { Tensor, TensorMap } from './core/tensor.js';
import { toLogFunction } from './core/logger.js';
import type { ConnectOptions } from './core/connect-options.js';
import { loadKeys, parseConnectOptions } from './internal/connect-options.js';
import type { WorkerLink } from './internal/link.js';
import type { StartOptions } from './core/start-options.js';
import { parseStartOptions } from './internal/options.js';
import { RemoteLink } from './internal/remote.js';
import { type CallOptions, Rpc } from './internal/rpc.js';
import type { WireMap } from './internal/wire.js';
import { type InternalHooks, Supervisor } from './internal/supervisor.js';
import { Checkpoints } from './jobs/checkpoints.js';
import { type TrainOptions, type TrainingJob, train } from './jobs/job.js';
import { type TrainManyOptions, trainMany } from './jobs/fused.js';
import type { JobSpec } from './jobs/spec.js';
import { reportAfterJob } from './reports/job-report.js';
import { type MemoryPlan, type PlanOptions, plan } from './jobs/plan.js';
import { type ClassifyInput, type ClassifyResult, classify } from './inference/classify.js';
import { type EmbedInput, type Embeddings, embed } from './inference/embed.js';
import { Evaluate } from './inference/evaluate.js';
import { type GenerateDelta, type GenerateInput, type GenerateResult, generate } from './inference/generate.js';
import { Prompts } from './inference/prompts.js';
import { type RerankInput, type RerankManyInput, type Reranked, rerank } from './inference/rerank.js';
import type { ProgressOptions } from './inference/shared.js';
import type { EventStream } from './core/event-stream.js';

export type { CallOptions } from './internal/rpc.js';

// The constructor stays private to this module: only startSoftprompt and connect make clients.
let construct: (link: WorkerLink, requestTimeoutMs: number | undefined, maxInFlight: number) => Softprompt;
let linkOf: (sp: Softprompt) => WorkerLink;

/**
 * A softprompt client with its own worker process.
 *
 * @example
 * await using sp = await Softprompt.start();
 * console.log(sp.capabilities.torch, sp.capabilities.devices);
 * const { x } = await sp.echo({ x: tensor('f32', [2], new Float32Array([1, 2])) });
 */
export class Softprompt implements AsyncDisposable {
  readonly #link: WorkerLink;
  readonly #rpc: Rpc;
  #closing: Promise<void> | undefined;

  private constructor(link: WorkerLink, requestTimeoutMs: number | undefined, maxInFlight: number) {
    this.#link = link;
    this.#rpc = new Rpc(link, requestTimeoutMs, maxInFlight);
    this.checkpoints = new Checkpoints(this.#rpc);
    this.prompts = new Prompts(this.#rpc);
    this.evaluate = new Evaluate(this.#rpc);
  }

  /** Soft prompts loaded in the worker, by name: `load`, `unload`, `list` (`inference/prompts.ts`). */
  readonly prompts: Prompts;

  /** Evaluation in the worker: `retrieval` (nDCG/Recall/MRR@k, STS) and `reranking` (Hits@k, MRR, nDCG). */
  readonly evaluate: Evaluate;

  /** Generates text with loaded prompts, streaming `{ row, text }` deltas (`inference/generate.ts`). */
  generate(input: GenerateInput, options?: CallOptions): EventStream<GenerateDelta, GenerateResult> {
    return generate(this.#rpc, input, options);
  }

  /** Picks the likeliest of `labels` for each input (`inference/classify.ts`). */
  classify(input: ClassifyInput, options?: CallOptions): Promise<ClassifyResult> {
    return classify(this.#rpc, input, options);
  }

  /** Embeds texts with a suffix prompt or the base model; rows × dim, Float32Array-backed (`inference/embed.ts`). */
  embed(input: EmbedInput, options?: ProgressOptions): Promise<Embeddings> {
    return embed(this.#rpc, input, options);
  }

  /** Orders passages by query likelihood, for one query or many (`inference/rerank.ts`). */
  rerank(input: RerankInput, options?: ProgressOptions): Promise<Reranked>;
  rerank(input: RerankManyInput, options?: ProgressOptions): Promise<Reranked[]>;
  rerank(input: RerankInput | RerankManyInput, options?: ProgressOptions): Promise<Reranked | Reranked[]> {
    return rerank(this.#rpc, input, options);
  }

  /** Checkpoint helpers: `inspect`, `exportPeft`, `importPeft` (`jobs/checkpoints.ts`). */
  readonly checkpoints: Checkpoints;

  /** Runs a training job built by `promptTuning(...)` & co.: events, `result()`, `cancel()` (`jobs/job.ts`). */
  train(spec: JobSpec, options?: TrainOptions): TrainingJob {
    return train(this.#rpc, spec, options, reportAfterJob);
  }

  /**
   * Trains several jobs on one model in shared forward/backward passes (a sweep over lr, length, init, or
   * several tasks): one {@link TrainingJob} per spec, each with its own events, result, checkpoints and report,
   * and results equal to the job trained alone. Prompt, prefix and P-tuning on generation or classification,
   * all on the same model and dtype; a spec that cannot fuse fails the group with the reason (`jobs/fused.ts`).
   *
   * @example
   * const jobs = sp.trainMany([0.01, 0.03, 0.1].map((lr) => promptTuning({ ...base, training: { lr }, runDir: `runs/lr-${lr}` })));
   * const results = await Promise.all(jobs.map((job) => job.result()));
   */
  trainMany(specs: readonly JobSpec[], options?: TrainManyOptions): TrainingJob[] {
    return trainMany(this.#rpc, specs, options, reportAfterJob);
  }

  /**
   * Estimates the peak memory of training `spec` on a device, says whether it fits `options.gpu` (or the
   * worker's GPU) and what to change when it does not; loads no weights (`jobs/plan.ts`, docs/memory.md).
   *
   * @example
   * const p = await sp.plan(spec, { gpu: '24GiB' });
   * if (!p.fits) console.log(p.suggestions.map((s) => s.text));
   */
  plan(spec: JobSpec, options?: PlanOptions): Promise<MemoryPlan> {
    return plan(this.#rpc, spec, options);
  }

  /**
   * Starts a worker (`python -m softprompt_worker`), waits until it is ready and has shaken hands,
   * and returns a client for it.
   *
   * @throws {ValidationError} an option is invalid; the message names it (`options.transport: ...`).
   * @throws {WorkerStartError} Python or a package is missing, the versions differ, or the worker did
   *   not start in time; the message says how to fix it.
   */
  static async start(options?: StartOptions): Promise<Softprompt> {
    return startSoftprompt(options, {});
  }

  /**
   * Connects to a shared worker (`softprompt-worker serve --bind tcp://HOST:PORT ...`) and returns a
   * client with the same API as {@link start}'s. TCP always runs with CURVE: pass `keys` (`{ dir }`
   * with the files `softprompt-worker keys new` wrote, or the Z85 strings). Loaded prompts are this
   * client's own (other clients of the worker do not see them) unless loaded with `shared: true`.
   * A lost connection fails the open calls with `ConnectionLostError`; the client reconnects by itself.
   * `close()` lets go of the worker without stopping it.
   *
   * @example
   * await using sp = await Softprompt.connect('tcp://gpu-box:5555', { keys: { dir: '~/.softprompt/keys' } });
   *
   * @throws {ValidationError} a bad endpoint or option, no keys for TCP, a missing or bad key file.
   * @throws {WorkerStartError} no answer within `connectTimeoutMs` (unreachable, or the key refused:
   *   the message says which when ZeroMQ reported it), another protocol version, or no torch there.
   */
  static async connect(endpoint: string, options?: ConnectOptions): Promise<Softprompt> {
    const resolved = parseConnectOptions(endpoint, options);
    const keys = await loadKeys(resolved.keys);
    const link = await RemoteLink.connect(endpoint, resolved, keys, toLogFunction(resolved.logger));
    return construct(link, resolved.requestTimeoutMs, resolved.maxInFlight);
  }

  /** What the worker can do (versions, devices, methods), as of the latest (re)start. */
  get capabilities(): Capabilities {
    return this.#link.hello.capabilities;
  }

  /** The worker's version string (`softprompt_worker.__version__`). */
  get workerVersion(): string {
    return this.#link.hello.workerVersion;
  }

  /** The worker's process id (on its machine), or `undefined` while it restarts or reconnects, or after close. */
  get workerPid(): number | undefined {
    return this.#link.current?.hello.pid;
  }

  /** Asks the worker for its capabilities now (they are also cached in {@link capabilities}). */
  info(options?: CallOptions): Promise<Capabilities> {
    return this.#rpc.request('info', {}, undefined, {
      ...options,
      decode: (reply) => capabilitiesSchema.parse(reply.body['capabilities']),
    });
  }

  /**
   * Whether the worker's compute thread still shows life. `ping` is answered even while the compute
   * thread is stuck; this reports `stuck: true` once it has been silent for `stuckAfterMs` (default
   * 120,000: a single forward pass may be long).
   */
  health(options: CallOptions & { stuckAfterMs?: number } = {}): Promise<WorkerHealth> {
    const { stuckAfterMs, ...call } = options;
    const body: WireMap = stuckAfterMs === undefined ? {} : { stuck_after_s: stuckAfterMs / 1000 };
    return this.#rpc.request('health', body, undefined, { ...call, decode: (reply) => healthSchema.parse(reply.body) });
  }

  /**
   * What the worker holds and does: loaded models with their memory, running and queued training jobs
   * with their progress, queue depths, and who has the device. Answered at once, even while jobs train.
   */
  status(options?: CallOptions): Promise<WorkerStatus> {
    return this.#rpc.request('status', {}, undefined, { ...options, decode: (reply) => statusSchema.parse(reply.body) });
  }

  /** Round-trips an empty request; resolves with the round-trip time in milliseconds. */
  async ping(options?: CallOptions): Promise<number> {
    const start = performance.now();
    await this.#rpc.request('ping', {}, undefined, options);
    return performance.now() - start;
  }

  /**
   * Sends tensors to the worker and back, bit for bit: a check of the data path. The returned
   * tensors view the received memory (no copy).
   */
  echo(tensors: TensorMap, options?: CallOptions): Promise<Record<string, Tensor>> {
    return this.#rpc.request('echo', {}, tensors, { ...options, decode: (reply) => ({ ...reply.tensors }) });
  }

  /**
   * Shuts the worker down (a `shutdown` request, then SIGTERM, then SIGKILL; a shared worker from
   * {@link connect} keeps running) and fails calls still open with `ClientClosedError`. Safe to call
   * more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#link.close();
    return this.#closing;
  }

  /** `await using client = await Softprompt.start()` closes the client at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  static {
    construct = (link, requestTimeoutMs, maxInFlight) => new Softprompt(link, requestTimeoutMs, maxInFlight);
    linkOf = (sp) => sp.#link;
  }
}

/**
 * `Softprompt.start` with internal hooks (a fake worker command for failure tests). Not exported
 * from the package entry point.
 */
export async function startSoftprompt(options: StartOptions | undefined, hooks: InternalHooks): Promise<Softprompt> {
  const resolved = parseStartOptions(options);
  const supervisor = await Supervisor.start(resolved, hooks, toLogFunction(resolved.logger));
  return construct(supervisor, resolved.requestTimeoutMs, resolved.maxInFlight);
}

/**
 * The endpoint of the worker `sp` started (`startSoftprompt`), while one runs; undefined for a
 * connected client. For the CLI's warm worker, which hands it to later CLI processes. Not exported
 * from the package entry point.
 */
export function localWorkerEndpoint(sp: Softprompt): string | undefined {
  const link = linkOf(sp);
  return link instanceof Supervisor ? link.current?.endpoint : undefined;
}
