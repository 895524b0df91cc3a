/**
 * The worker's prompt cache (ops `prompt_load`, `prompt_unload`, `prompt_list`): soft prompts kept
 * ready by name, so `generate` and `classify` can use them (several in one batch) without reloading.
 * The base model is loaded once per worker and shared by every prompt on it.
 */
import { z } from 'zod';
import { type ModelSpec, modelSpecSchema } from '../jobs/model-spec.js';
import type { CallOptions, Incoming, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { promptName, toWireBody } from './shared.js';

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
}

/** Options of {@link Prompts.load}. */
export interface PromptLoadOptions extends CallOptions {
  /** The base model to load the prompt onto. Default: the model the checkpoint records. */
  readonly model?: ModelSpec;
}

const loadSchema = z.strictObject({
  name: promptName,
  path: z.string().min(1, 'expected a checkpoint file path'),
  model: modelSpecSchema.optional(),
});

const promptInfoSchema = z
  .object({
    name: z.string(),
    path: z.string(),
    method: z.string(),
    method_config: z.record(z.string(), z.unknown()),
    model: z.string(),
    num_trainable_parameters: z.number(),
    step: z.number(),
    metrics: z.record(z.string(), z.number()),
  })
  .transform(
    (p): PromptInfo => ({
      name: p.name,
      path: p.path,
      method: p.method,
      methodConfig: p.method_config,
      model: p.model,
      numTrainableParameters: p.num_trainable_parameters,
      step: p.step,
      metrics: p.metrics,
    }),
  );

const decodeInfo = (reply: Incoming): PromptInfo => promptInfoSchema.parse(reply.body);

/**
 * Soft prompts loaded in the worker, by name (`sp.prompts`).
 *
 * @example
 * await sp.prompts.load('sentiment', '/runs/a/checkpoints/final.pb');
 * const out = await sp.generate({ prompt: 'sentiment', inputs: ['great film'] }).result();
 * await sp.prompts.unload('sentiment');
 */
export class Prompts {
  readonly #rpc: Rpc;

  /** @internal The client makes this; use `sp.prompts`. */
  constructor(rpc: Rpc) {
    this.#rpc = rpc;
  }

  /**
   * Loads the checkpoint at `checkpointPath` under `name` (a name already loaded is replaced), checking
   * that it was trained on this model (the model fingerprint).
   *
   * @throws {ValidationError} `prompts.load.path: ...` before anything is sent.
   * @throws {RemoteError} `not_found` (no such file), `checkpoint_invalid`, `invalid_argument` (a
   *   method not used for generation, or another model).
   */
  async load(name: string, checkpointPath: string, options: PromptLoadOptions = {}): Promise<PromptInfo> {
    const { model, ...call } = options;
    const body = parseOrThrow(loadSchema, { name, path: checkpointPath, model }, 'prompts.load');
    return this.#rpc.request('prompt_load', toWireBody(body), undefined, { ...call, decode: decodeInfo });
  }

  /** Forgets the prompt `name`; resolves with whether it was loaded. */
  async unload(name: string, options?: CallOptions): Promise<boolean> {
    const body = parseOrThrow(z.strictObject({ name: promptName }), { name }, 'prompts.unload');
    return this.#rpc.request('prompt_unload', body, undefined, {
      ...options,
      decode: (reply) => z.object({ unloaded: z.boolean() }).parse(reply.body).unloaded,
    });
  }

  /** The loaded prompts, sorted by name. */
  list(options?: CallOptions): Promise<PromptInfo[]> {
    return this.#rpc.request('prompt_list', {}, undefined, {
      ...options,
      decode: (reply) => z.object({ prompts: z.array(promptInfoSchema) }).parse(reply.body).prompts,
    });
  }
}
