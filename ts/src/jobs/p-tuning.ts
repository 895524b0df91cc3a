/**
 * P-tuning: virtual-token embeddings produced by a trainable prompt encoder (an MLP, or a BiLSTM + MLP)
 * and prepended to the input of a frozen LM.
 *
 * Liu et al., "GPT Understands, Too" (2021), https://arxiv.org/abs/2103.10385; PEFT's
 * `PromptEncoderConfig`. Options mirror `PTuningConfig` in python/softprompt_worker/methods/p_tuning.py.
 * The prompt is used like a prompt-tuning prompt (`generate`, `classify`) and exports to PEFT's
 * `P_TUNING` adapter.
 *
 * @example
 * const spec = pTuning({
 *   model: { nameOrPath: 'gpt2' },
 *   numVirtualTokens: 20,
 *   encoder: 'mlp',
 *   task: { type: 'classification', labels: ['positive', 'negative'] },
 *   data: { train: { path: 'sst2.jsonl' }, evalFraction: 0.1 },
 *   training: { steps: 500, lr: 1e-2 },
 *   runDir: 'runs/sst2-p',
 * });
 * const result = await sp.train(spec).result();
 */
import { z } from 'zod';
import { type PTuningConfig, pTuningFields } from '../gen/schema/p-tuning.js';
import type { ClassificationRow, GenerationRow, LmTask, ResolvedLmTask } from './lm-tasks.js';
import { lmTaskSchema, lmTaskToWire } from './lm-tasks.js';
import { type Same, checkInitText } from '../spec/schema.js';
import { type JobInput, type JobSpec, defineMethod } from './spec.js';

/** The options of P-tuning. */
export interface PTuningOptions {
  /** Virtual tokens prepended to every input, 1..4096. Default 20. */
  readonly numVirtualTokens?: number;
  /** The prompt encoder: `'mlp'` (default; PEFT's recommendation) or `'lstm'` (the paper's BiLSTM + MLP head). */
  readonly encoder?: 'mlp' | 'lstm';
  /** The encoder's hidden width, 1..65536. Default: the model's hidden size. */
  readonly encoderHiddenSize?: number;
  /** LSTM layers, 1..8 (`encoder: 'lstm'` only). Default 2. */
  readonly encoderNumLayers?: number;
  /** Where the encoder's input table starts: `'random'` (default), `'vocab'` or `'text'` (the tokens of `initText`). */
  readonly init?: 'random' | 'vocab' | 'text';
  /** The text for `init: 'text'`. Required then. */
  readonly initText?: string;
  /** Seeds the input table and the encoder's weights. Default 0. */
  readonly seed?: number;
}

export type ResolvedPTuningOptions = Required<Omit<PTuningOptions, 'initText' | 'encoderHiddenSize'>> &
  Pick<PTuningOptions, 'initText' | 'encoderHiddenSize'>;

/** `pTuning(...)` input: the method's options beside model, task, data, training, runDir. */
export interface PTuningJob extends PTuningOptions, JobInput<LmTask, GenerationRow | ClassificationRow> {
  /** `'generation'` (default) or `{ type: 'classification', labels }`. */
  readonly task?: LmTask;
}

export type PTuningSpec = JobSpec<'p_tuning', ResolvedPTuningOptions, ResolvedLmTask>;

// The documented options are the worker's PTuningConfig (proto/schema/p_tuning.json), or this fails to compile.
true satisfies Same<ResolvedPTuningOptions, PTuningConfig>;

const configSchema = z.strictObject(pTuningFields).superRefine((c, ctx) => {
  checkInitText(c, ctx);
  if (c.encoder !== 'lstm' && c.encoderNumLayers !== 2) {
    ctx.addIssue({ code: 'custom', path: ['encoderNumLayers'], message: "only used when encoder is 'lstm'" });
  }
});

/**
 * A P-tuning job: validated (a {@link ValidationError} names each bad field, e.g.
 * `job.encoder: ...`) and frozen.
 */
export const pTuning: (job: PTuningJob) => PTuningSpec = defineMethod({
  method: 'p_tuning',
  config: configSchema,
  task: lmTaskSchema,
  taskToWire: lmTaskToWire,
});
