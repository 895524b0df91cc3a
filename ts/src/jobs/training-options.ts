/**
 * How to train: optimizer, schedule, batch shape, logging and checkpoint cadence. Mirrors
 * `TrainingConfig` in python/softprompt_worker/training.py field for field (camelCase here).
 *
 * Defaults follow the PEFT prompt-learning examples (`peft_prompt_tuning_clm`,
 * `peft_prefix_tuning_seq2seq`: AdamW, lr 3e-2, linear decay, no warmup). Soft prompts need far larger
 * learning rates than fine-tuning: Lester et al. (2021) used Adafactor at lr 0.3.
 */
import { z } from 'zod';
import { toSnake } from '../spec/case.js';
import { type TrainingConfig, trainingFields } from '../gen/schema/training.js';
import { type TrainingExtrasConfig, trainingExtrasFields } from '../gen/schema/training-extras.js';
import type { Same } from '../spec/schema.js';

export const OPTIMIZERS = ['adamw', 'adafactor', 'sgd'] as const;
export const SCHEDULES = ['constant', 'linear', 'cosine'] as const;
export const TRAINING_DTYPES = ['auto', 'f32', 'bf16'] as const;
/** Experiment trackers a job can log to (python/softprompt_worker/trackers.py). */
export const TRACKERS = ['tensorboard'] as const;

/** Training options; every field is optional. Upper bounds are in limits.ts (the worker's limits.py). */
export interface TrainingOptions {
  /** Optimizer steps, at most 10,000,000. Default: unset, so {@link epochs} decides. Give `steps` or `epochs`, not both. */
  readonly steps?: number;
  /** Passes over the training rows when `steps` is unset. Default 1 (training.py). */
  readonly epochs?: number;
  /** Rows per micro-batch, at most 65,536. Default 8 (PEFT prompt-tuning examples). */
  readonly batchSize?: number;
  /** Micro-batches per optimizer step (effective batch = `batchSize × gradAccumulation`). Default 1. */
  readonly gradAccumulation?: number;
  /** Tokens per row after truncation, at most 2^20 (and the model's position table). Default 512 (training.py; tasks read it). */
  readonly maxLength?: number;
  /** `'adamw'` (default, PEFT examples), `'adafactor'` (Lester et al. 2021) or `'sgd'`. */
  readonly optimizer?: (typeof OPTIMIZERS)[number];
  /** Peak learning rate. Default 3e-2 (PEFT `peft_prompt_tuning_clm`; Lester et al. used 0.3 with Adafactor). */
  readonly lr?: number;
  /** Decay to 0 at the last step after warmup: `'linear'` (default, PEFT examples), `'cosine'`, `'constant'`. */
  readonly schedule?: (typeof SCHEDULES)[number];
  /** Linear warmup from 0 to `lr` over this many steps. Default 0 (PEFT examples). */
  readonly warmupSteps?: number;
  /** AdamW/Adafactor/SGD weight decay. Default 0 (PEFT examples; Lester et al. used 1e-5). */
  readonly weightDecay?: number;
  /** Gradient clipping by global norm; 0 disables it. Default 1.0 (transformers Trainer default). */
  readonly maxGradNorm?: number;
  /** Seeds the data order, the train/eval split and method-side randomness. Default 0. */
  readonly seed?: number;
  /** `'auto'` (default: bf16 autocast on CUDA when supported, else f32), `'f32'` or `'bf16'`. */
  readonly dtype?: (typeof TRAINING_DTYPES)[number];
  /** Steps between evaluations; 0 = only at the end. Default 0. */
  readonly evalEvery?: number;
  /** Steps between checkpoints; 0 = only at the end (and on cancel). Default 0. */
  readonly checkpointEvery?: number;
  /**
   * Checkpoints kept: after each one is written, this job's older ones beyond the newest `keepLast` are
   * deleted, so long runs do not fill the disk (transformers' `save_total_limit`). 0 = keep all (default).
   */
  readonly keepLast?: number;
  /**
   * Experiment trackers that also get the job's scalars (transformers' `report_to`): `'tensorboard'`
   * writes event files under `<runDir>/tensorboard/` (train/loss, train/lr, eval/<metric>, ...; needs
   * the `tensorboard` package in the worker's Python). Default: none.
   */
  readonly reportTo?: readonly (typeof TRACKERS)[number][];
  /** Steps between `step` events (each one syncs the device once). Default 10. */
  readonly logEvery?: number;
  /**
   * Which evaluation is the job's result (transformers' `load_best_model_at_end` + `metric_for_best_model`).
   * Every evaluation is a candidate, the untuned prompt's step-0 one included; the best one's prompt is
   * saved as `<runDir>/checkpoints/best.pb` and named by `result.best`, which `sp.prompts.load(name, result)`
   * loads. `'auto'` (default) picks the task's own metric: `accuracy` (classification), `ndcg@10`
   * (embedding, reranking), the held-out `loss` (generation). A metric name the task reports (`mrr`,
   * `exact_match`, `loss`, ...) picks that one; names holding `loss` or `perplexity` are better lower.
   * `'last'` turns selection off. Needs eval rows (`data.eval` or `data.evalFraction`); without them
   * `'auto'` says so in the `selection` event and the last step is the result. Evaluations come at step 0,
   * every {@link evalEvery} steps and at the end.
   */
  readonly selectBy?: 'auto' | 'last' | (string & {});
  /**
   * Stop after `patience` evaluations in a row that do not improve {@link selectBy} by more than
   * `minDelta` (default 0); needs {@link evalEvery}. The run ends `completed`, with
   * `summary.selection.stoppedEarlyAt` set (transformers' `EarlyStoppingCallback`). Default: off.
   */
  readonly earlyStopping?: { readonly patience: number; readonly minDelta?: number };
  /**
   * Evaluate the untuned prompt once before the first step (an `eval` event at step 0, and
   * `summary.baselineMetrics`): the baseline every report compares against. Default true.
   */
  readonly evalBaseline?: boolean;
  /**
   * Keep only each frozen layer's input and recompute its activations in backward: far less memory for
   * long sequences and large batches, about a third more compute per step. Every method, prefix tuning
   * included. Default false.
   */
  readonly gradientCheckpointing?: boolean;
  /**
   * On a worker group (`Softprompt.start({ distributed })`): shard the frozen model's layers over the ranks
   * with FSDP2, for models larger than one GPU; the soft parameters stay replicated. Rank 0 reads the
   * weights into host memory once. Not with `model.quantization`. Default false (docs/distributed.md).
   */
  readonly shardModel?: boolean;
  /**
   * On a CUDA device, refuse a job the memory planner (`sp.plan`, docs/memory.md) says will not fit, before
   * the model is loaded, with the estimate, the device's memory and what to change. `false` trains anyway.
   * No check on the CPU. Default true (the worker's default: sent only when set).
   */
  readonly memoryCheck?: boolean;
}

/** {@link TrainingOptions} after validation, defaults filled in (`steps`, `keepLast`, `reportTo`, `memoryCheck`, `earlyStopping` stay optional: the worker's defaults apply). */
export type ResolvedTrainingOptions = Required<Omit<TrainingOptions, 'steps' | 'keepLast' | 'reportTo' | 'memoryCheck' | 'earlyStopping'>> &
  Pick<TrainingOptions, 'steps' | 'keepLast' | 'reportTo' | 'memoryCheck'> & {
    readonly earlyStopping?: { readonly patience: number; readonly minDelta: number };
  };

// The documented options are the worker's TrainingConfig (proto/schema/training.json) plus the two fields
// the train op reads itself (TrainingExtras: checkpoint retention and trackers, training_extras.json), or this
// fails to compile. (`epochs` is optional before the transform below fills it in.)
true satisfies Same<Omit<ResolvedTrainingOptions, 'epochs'> & { readonly epochs?: number }, TrainingConfig & TrainingExtrasConfig>;
true satisfies Same<(typeof TRACKERS)[number], NonNullable<TrainingExtrasConfig['reportTo']>[number]>;

export const trainingOptionsSchema = z
  .strictObject({ ...trainingFields, ...trainingExtrasFields })
  .superRefine((t, ctx) => {
    if (t.steps !== undefined && t.epochs !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['epochs'], message: 'give steps or epochs, not both' });
    }
    if (t.earlyStopping !== undefined && t.evalEvery === 0) {
      ctx.addIssue({ code: 'custom', path: ['earlyStopping'], message: 'needs evalEvery > 0: it counts evaluations without improvement' });
    }
    if (t.earlyStopping !== undefined && t.selectBy === 'last') {
      ctx.addIssue({ code: 'custom', path: ['earlyStopping'], message: "needs a metric to watch; selectBy is 'last'" });
    }
  })
  .transform(({ epochs, ...rest }): ResolvedTrainingOptions => ({ ...rest, epochs: epochs ?? 1 }))
  .prefault({});

/** The worker's `training` body (`batch_size`, `grad_accumulation`, ...). */
export function trainingToWire(options: ResolvedTrainingOptions): Record<string, unknown> {
  return toSnake(options) as Record<string, unknown>;
}
