/**
 * The worker's prompt cache (ops `prompt_load`, `prompt_unload`, `prompt_list`): soft prompts of any
 * method kept ready by name, so later calls use them without reloading: `generate` and `classify`
 * (prompt and prefix tuning; several prompts in one batch), `embed` and `evaluate.retrieval` (suffix
 * tuning), `rerank` and `evaluate.reranking` (passage tuning). The base model is loaded once per
 * worker and shared by every prompt on it. The client remembers what it loaded and loads it again
 * into a worker the supervisor restarted after a crash, before any other call reaches that worker.
 */
import { z } from 'zod';
import type { ModelSpec } from '../spec/model-spec.js';
import { type PromptListReply, promptListReplySchema } from '../gen/schema/prompt-list-reply.js';
import { promptLoadReplySchema } from '../gen/schema/prompt-load-reply.js';
import { type PromptLoadRequest, promptLoadRequestFields } from '../gen/schema/prompt-load-request.js';
import { promptUnloadReplySchema } from '../gen/schema/prompt-unload-reply.js';
import { promptUnloadRequestSchema } from '../gen/schema/prompt-unload-request.js';
import { type Camel, camelized } from '../spec/case.js';
import type { Same } from '../spec/schema.js';
import type { TrainingResult } from '../jobs/events.js';
import { ClientClosedError, RemoteError, WorkerCrashedError } from '../core/errors.js';
import type { CallOptions, Incoming, Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';
import { parseOrThrow } from '../internal/validate.js';
import { toWireBody } from './shared.js';

/** A loaded soft prompt, as the worker describes it. */
export interface PromptInfo {
  /** The name it was loaded under. */
  readonly name: string;
  /** The checkpoint file it came from. */
  readonly path: string;
  /** `'prompt_tuning'`, `'prefix_tuning'`, ... */
  readonly method: string;
  /** The method's options as trained, in the worker's snake_case (`{ num_virtual_tokens: 20, ... }`). */
  readonly methodConfig: Readonly<Record<string, unknown>>;
  /** The base model's display name (`'gpt2'`, `'tiny:gpt2'`). */
  readonly model: string;
  readonly numTrainableParameters: number;
  /** The training step the checkpoint was written at. */
  readonly step: number;
  /** Metrics recorded with the checkpoint (`{ loss: 1.5 }`). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Whether every client of a shared worker sees it (loaded with `shared: true`); else it is this client's own. */
  readonly shared: boolean;
}

/** Options of {@link Prompts.load}. */
export interface PromptLoadOptions extends CallOptions {
  /** The base model to load the prompt onto. Default: the model the checkpoint records. */
  readonly model?: ModelSpec;
  /**
   * On a worker several clients share (`Softprompt.connect`): let every client use it by `name`
   * (a client's own prompt of that name still comes first for that client). Default false: prompts
   * are the loading client's own.
   */
  readonly shared?: boolean;
}

const loadSchema = z.strictObject(promptLoadRequestFields);

// The documented types are the worker's (proto/schema/prompt_*.json), or this fails to compile; a prompt's
// method config keeps the worker's snake_case names.
true satisfies Same<PromptInfo, Camel<PromptListReply['prompts'][number], 'method_config' | 'metrics'>>;
true satisfies Same<Omit<PromptLoadOptions, keyof CallOptions>, Omit<PromptLoadRequest, 'name' | 'path'>>;

const decodeInfo = (reply: Incoming): PromptInfo => camelized(promptLoadReplySchema.parse(reply.body), ['method_config', 'metrics']);

/** What {@link Prompts.load} reads from a training result: its best and its last checkpoint. */
export type TrainedCheckpoints = Pick<TrainingResult, 'checkpoint' | 'best'>;

/**
 * Soft prompts loaded in the worker, by name (`sp.prompts`).
 *
 * @example
 * await sp.prompts.load('sentiment', '/runs/a/checkpoints/final.pb');
 * await sp.prompts.load('sentiment', await job.result()); // the job's best evaluation (training.selectBy)
 * const out = await sp.generate({ prompt: 'sentiment', inputs: ['great film'] }).result();
 * await sp.prompts.unload('sentiment');
 */
export class Prompts {
  readonly #rpc: Rpc;
  /** What this client loaded, by name: the `prompt_load` body to send again after a worker restart. */
  readonly #loaded = new Map<string, WireMap>();
  /** The latest load/unload call per name; an older load that finishes later does not overwrite it. */
  readonly #latest = new Map<string, symbol>();
  #replayHooked = false;

  /** @internal The client makes this; use `sp.prompts`. */
  constructor(rpc: Rpc) {
    this.#rpc = rpc;
  }

  /**
   * Loads a checkpoint under `name` (a name already loaded is replaced): a path, or a training job's
   * result, whose best evaluation (`result.best`, `training.selectBy`) it loads, or its last checkpoint
   * when selection was off (load `result.checkpoint` to get the last step on purpose). Checks
   * that it was trained on this model (the model fingerprint). Any method loads; each call that takes
   * a prompt says which methods it uses. If the worker crashes, the restarted worker gets the prompt
   * again (same path and model) before it serves other calls.
   *
   * @throws {ValidationError} `prompts.load.path: ...` before anything is sent.
   * @throws {RemoteError} `not_found` (no such file), `checkpoint_invalid` (corrupt, or trained on
   *   another model), `invalid_argument` (a bad `model`).
   */
  async load(name: string, checkpoint: string | TrainedCheckpoints, options: PromptLoadOptions = {}): Promise<PromptInfo> {
    const { model, shared, ...call } = options;
    const checkpointPath = typeof checkpoint === 'string' ? checkpoint : (checkpoint.best?.checkpoint ?? checkpoint.checkpoint);
    const body = toWireBody(parseOrThrow(loadSchema, { name, path: checkpointPath, model, shared }, 'prompts.load'));
    const token = Symbol(name);
    this.#latest.set(name, token);
    const info = await this.#rpc.request('prompt_load', body, undefined, { ...call, decode: decodeInfo });
    if (this.#latest.get(name) === token) this.#remember(name, body);
    return info;
  }

  /** Forgets the prompt `name` (here and in the worker); resolves with whether the worker had it. */
  async unload(name: string, options?: CallOptions): Promise<boolean> {
    const body = parseOrThrow(promptUnloadRequestSchema, { name }, 'prompts.unload');
    this.#latest.set(name, Symbol(name));
    this.#loaded.delete(name); // not replayed after a restart, even if this call fails with the worker
    return this.#rpc.request('prompt_unload', body, undefined, {
      ...options,
      decode: (reply) => promptUnloadReplySchema.parse(reply.body).unloaded,
    });
  }

  /** The loaded prompts, sorted by name. */
  list(options?: CallOptions): Promise<PromptInfo[]> {
    return this.#rpc.request('prompt_list', {}, undefined, {
      ...options,
      decode: (reply) => camelized(promptListReplySchema.parse(reply.body).prompts, ['method_config', 'metrics']),
    });
  }

  #remember(name: string, body: WireMap): void {
    this.#loaded.set(name, body);
    if (this.#replayHooked) return;
    this.#replayHooked = true;
    this.#rpc.onRestart((worker) => this.#reload(worker));
  }

  /**
   * Loads every remembered prompt into a restarted worker, in load order. A prompt the worker refuses
   * now (its checkpoint was deleted, say) is forgotten and logged, so a later call naming it gets
   * `not_found`; if the new worker dies too, the prompts stay remembered for the next restart.
   */
  async #reload(worker: Rpc): Promise<void> {
    for (const [name, body] of [...this.#loaded]) {
      try {
        await worker.request('prompt_load', body);
      } catch (error) {
        if (error instanceof WorkerCrashedError || error instanceof ClientClosedError) return; // kept for the next restart
        if (error instanceof RemoteError && this.#loaded.get(name) === body) this.#loaded.delete(name);
        worker.log('warn', `prompt '${name}' could not be loaded again after the worker restarted: ${(error as Error).message}`);
      }
    }
  }
}
