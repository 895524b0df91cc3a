/**
 * Prefix tuning: trainable key/value prefixes in every attention layer of a frozen LM.
 *
 * Li & Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation" (ACL 2021),
 * https://arxiv.org/abs/2101.00190. Options mirror `PrefixTuningConfig` in
 * python/softprompt_worker/methods/prefix_tuning.py. Encoder–decoders get prefixes on the encoder,
 * the decoder and cross-attention, as in the paper.
 *
 * @example
 * const spec = prefixTuning({
 *   model: { nameOrPath: 't5-small' },
 *   numVirtualTokens: 10,
 *   prefixProjection: true,
 *   data: { train: { path: 'e2e.jsonl' } },
 *   training: { epochs: 5, lr: 5e-5 },
 *   runDir: 'runs/e2e',
 * });
 */
import { z } from 'zod';
import type { ClassificationRow, GenerationRow, LmTask, ResolvedLmTask } from './lm-tasks.js';
import { lmTaskSchema, lmTaskToWire } from './lm-tasks.js';
import { type PrefixTuningConfig, prefixTuningFields } from '../gen/schema/prefix-tuning.js';
import { type Same, checkInitText } from '../spec/schema.js';
import { type JobInput, type JobSpec, defineMethod } from './spec.js';

/** The options of prefix tuning. */
export interface PrefixTuningOptions {
  /** Prefix length per attention module, 1..4096. Default 20 (PEFT examples use 20–30; the paper 10 for table-to-text, 200 for summarisation). */
  readonly numVirtualTokens?: number;
  /**
   * Reparameterise the prefix through an MLP while training (the paper's Sec. 4.3: needed for stable
   * optimisation, used with lr 5e-5..8e-5). Default `false` (PEFT's default).
   */
  readonly prefixProjection?: boolean;
  /** The MLP's hidden width. Default: the model's key/value width (PEFT's `encoder_hidden_size`); the paper used 512–800. */
  readonly projectionHiddenSize?: number;
  /** Seeds the initialisation (PEFT's `nn.Embedding`/`nn.Linear` defaults). Default 0. */
  readonly seed?: number;
  /**
   * `'random'` (default, PEFT's N(0, 1)) or `'text'`: the paper's initialisation with real words' activations
   * (Sec. 7.2; it matters most with little data): the keys/values the frozen model computes for `initText`,
   * so the untrained prefix acts exactly like that text before the input. Decoder-only models, without
   * `prefixProjection`.
   */
  readonly init?: 'random' | 'text';
  /** The text for `init: 'text'`, e.g. `'Classify the package by its section:'`. Required then. */
  readonly initText?: string;
}

export type ResolvedPrefixTuningOptions = Required<Omit<PrefixTuningOptions, 'projectionHiddenSize' | 'initText'>> &
  Pick<PrefixTuningOptions, 'projectionHiddenSize' | 'initText'>;

/** `prefixTuning(...)` input: the method's options beside model, task, data, training, runDir. */
export interface PrefixTuningJob extends PrefixTuningOptions, JobInput<LmTask, GenerationRow | ClassificationRow> {
  /** `'generation'` (default) or `{ type: 'classification', labels }`. */
  readonly task?: LmTask;
}

export type PrefixTuningSpec = JobSpec<'prefix_tuning', ResolvedPrefixTuningOptions, ResolvedLmTask>;

// The documented options are the worker's PrefixTuningConfig (proto/schema/prefix_tuning.json), or this fails to compile.
true satisfies Same<ResolvedPrefixTuningOptions, PrefixTuningConfig>;

const configSchema = z
  .strictObject(prefixTuningFields)
  .superRefine((c, ctx) => {
    checkInitText(c, ctx);
    if (c.init === 'text' && c.prefixProjection) {
      ctx.addIssue({ code: 'custom', path: ['init'], message: "'text' sets the prefix itself; it needs prefixProjection false" });
    }
  });

/**
 * A prefix-tuning job: validated (a {@link ValidationError} names each bad field, e.g.
 * `job.numVirtualTokens: must be > 0`) and frozen.
 */
export const prefixTuning: (job: PrefixTuningJob) => PrefixTuningSpec = defineMethod({
  method: 'prefix_tuning',
  config: configSchema,
  task: lmTaskSchema,
  taskToWire: lmTaskToWire,
});
