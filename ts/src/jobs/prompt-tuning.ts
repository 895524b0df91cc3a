/**
 * Prompt tuning: trainable virtual-token embeddings prepended to the input of a frozen LM.
 *
 * Lester, Al-Rfou & Constant, "The Power of Scale for Parameter-Efficient Prompt Tuning" (EMNLP 2021),
 * https://arxiv.org/abs/2104.08691. Options mirror `PromptTuningConfig` in
 * python/softprompt_worker/methods/prompt_tuning.py.
 *
 * @example
 * const spec = promptTuning({
 *   model: { nameOrPath: 'gpt2' },
 *   numVirtualTokens: 20,
 *   task: { type: 'classification', labels: ['positive', 'negative'] },
 *   data: { train: { path: 'sst2.jsonl' }, evalFraction: 0.1 },
 *   training: { steps: 500, lr: 3e-2 },
 *   runDir: 'runs/sst2',
 * });
 * const result = await sp.train(spec).result();
 */
import { z } from 'zod';
import type { ClassificationRow, GenerationRow, LmTask, ResolvedLmTask } from './lm-tasks.js';
import { lmTaskSchema, lmTaskToWire } from './lm-tasks.js';
import { type PromptTuningConfig, promptTuningFields } from '../gen/schema/prompt-tuning.js';
import { type Same, checkInitText } from '../spec/schema.js';
import { type JobInput, type JobSpec, defineMethod } from './spec.js';

/** The options of prompt tuning. */
export interface PromptTuningOptions {
  /** Virtual tokens prepended to every input, 1..4096. Default 20 (Lester et al. find 20–100 best; 20 is cheap and strong). */
  readonly numVirtualTokens?: number;
  /**
   * How the vectors start: `'vocab'` (default: embeddings of sampled common tokens, the paper's best
   * init), `'text'` (the tokens of `initText`, repeated/cut; PEFT's `TEXT`), `'random'` (normal at the
   * embedding scale) or `'checkpoint'` (another prompt's vectors: prompt transfer, Vu et al. 2022).
   */
  readonly init?: 'vocab' | 'text' | 'random' | 'checkpoint';
  /** The text for `init: 'text'`, e.g. `'Classify the sentiment of this review:'`. Required then. */
  readonly initText?: string;
  /** A prompt-tuning checkpoint for `init: 'checkpoint'`. Required then. */
  readonly initCheckpoint?: string;
  /** Seeds the `'vocab'` and `'random'` inits. Default 0. */
  readonly seed?: number;
}

export type ResolvedPromptTuningOptions = Required<Omit<PromptTuningOptions, 'initText' | 'initCheckpoint'>> &
  Pick<PromptTuningOptions, 'initText' | 'initCheckpoint'>;

/** `promptTuning(...)` input: the method's options beside model, task, data, training, runDir. */
export interface PromptTuningJob extends PromptTuningOptions, JobInput<LmTask, GenerationRow | ClassificationRow> {
  /** `'generation'` (default) or `{ type: 'classification', labels }`. */
  readonly task?: LmTask;
}

export type PromptTuningSpec = JobSpec<'prompt_tuning', ResolvedPromptTuningOptions, ResolvedLmTask>;

// The documented options are the worker's PromptTuningConfig (proto/schema/prompt_tuning.json), or this fails to compile.
true satisfies Same<ResolvedPromptTuningOptions, PromptTuningConfig>;

const configSchema = z
  .strictObject(promptTuningFields)
  .superRefine((c, ctx) => {
    checkInitText(c, ctx);
    if (c.init === 'checkpoint' && c.initCheckpoint === undefined) {
      ctx.addIssue({ code: 'custom', path: ['initCheckpoint'], message: "required when init is 'checkpoint'" });
    }
  });

/**
 * A prompt-tuning job: validated (a {@link ValidationError} names each bad field, e.g.
 * `job.training.lr: must be > 0`) and frozen.
 */
export const promptTuning: (job: PromptTuningJob) => PromptTuningSpec = defineMethod({
  method: 'prompt_tuning',
  config: configSchema,
  task: lmTaskSchema,
  taskToWire: lmTaskToWire,
});
