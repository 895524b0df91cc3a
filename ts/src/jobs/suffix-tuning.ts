/**
 * Suffix prompt tuning (SPT): trainable vectors appended after the text of a frozen model, pooled
 * into a text embedding, trained contrastively for retrieval.
 *
 * Zhao et al., "Prompt Tuning Can Simply Adapt Large Language Models to Text Encoders" (RepL4NLP 2025).
 * Options mirror `SuffixTuningConfig` (python/softprompt_worker/methods/suffix_tuning.py); the task
 * is `embedding` (python/softprompt_worker/tasks/embedding.py).
 *
 * @example
 * const spec = suffixTuning({
 *   model: { nameOrPath: 'Qwen/Qwen2.5-0.5B' },
 *   numVirtualTokens: 16,
 *   task: { temperature: 0.05 },
 *   data: { train: { path: 'msmarco-triples.jsonl' }, evalFraction: 0.01 },
 *   training: { steps: 1000, batchSize: 64 },
 *   runDir: 'runs/spt',
 * });
 */
import { z } from 'zod';
import { type SuffixTuningConfig, suffixTuningFields } from '../gen/schema/suffix-tuning.js';
import { type EmbeddingTaskConfig, embeddingTaskFields } from '../gen/schema/embedding-task.js';
import { type Same, checkInitText, singleTask } from '../spec/schema.js';
import { type JobInput, type JobSpec, defineMethod } from './spec.js';

/** The options of suffix tuning. */
export interface SuffixTuningOptions {
  /** Suffix length `k`, 1..4096. Default 16 (suffix_tuning.py; Lester et al. 2021 found 5–100 all work). */
  readonly numVirtualTokens?: number;
  /**
   * `'model'` (default): the model's own mask: causal for decoder LMs (SPT-uni, the paper's main
   * setting), bidirectional for encoders. `'bidirectional'`: a decoder LM attends both ways (SPT-bi).
   * `'gated'` (encoders; needs `pooling: 'text_mean'` or `'first'`): every position reads the suffix
   * through per-layer, per-head gates that start closed (LLaMA-Adapter's zero-init attention), so the
   * untrained suffix leaves the encoder's embedding as it was and training opens the gates: for adapting
   * a good embedder such as MiniLM without harming it.
   */
  readonly attention?: 'model' | 'bidirectional' | 'gated';
  /**
   * `'last'` (default, the paper's choice): the hidden state at the last suffix position; `'mean'`:
   * mean over every real position, the suffix's included; `'text_mean'`: mean over the text's
   * positions only, so the suffix acts only through what the text attends to (for a
   * mean-pooling encoder such as MiniLM: an untrained suffix then costs it about 1 nDCG@10 point instead
   * of 8; needs bidirectional attention: an encoder, or `attention: 'bidirectional'`); `'first'`: the
   * first position (BERT's `[CLS]`).
   */
  readonly pooling?: 'last' | 'mean' | 'text_mean' | 'first';
  /** L2-normalise embeddings (cosine similarity becomes a dot product). Default `true`. */
  readonly normalize?: boolean;
  /** `'vocab'` (default: random vocabulary embeddings, Lester et al. 2021), `'random'` or `'text'` (`initText`'s tokens, repeated). */
  readonly init?: 'vocab' | 'random' | 'text';
  /** The text for `init: 'text'` (e.g. `'This sentence means in one word:'`); set exactly then. */
  readonly initText?: string;
  /** Most text tokens per input before the suffix. Default: the model's position limit minus `k`. */
  readonly maxLength?: number;
}

export type ResolvedSuffixTuningOptions = Required<Omit<SuffixTuningOptions, 'initText' | 'maxLength'>> &
  Pick<SuffixTuningOptions, 'initText' | 'maxLength'>;

/** Contrastive embedding training (InfoNCE with in-batch and hard negatives), evaluated as retrieval. */
export interface EmbeddingTask {
  readonly type?: 'embedding';
  /** Softmax temperature. Default 0.05, i.e. scale 20 (sentence-transformers `MultipleNegativesRankingLoss`). */
  readonly temperature?: number;
  /** Also score positives against queries (both directions). Default `false`. */
  readonly symmetric?: boolean;
  /** GradCache mini-batch size (big batches in small memory; Gao et al. 2021); 0 = off. Default 0. */
  readonly gradCacheMiniBatch?: number;
  /** Texts per forward pass when evaluating. Default 64. */
  readonly evalBatchSize?: number;
  /** Cut-offs of nDCG/recall/MRR@k on the eval rows. Default `[1, 10, 100]`. */
  readonly kValues?: readonly number[];
}

export type ResolvedEmbeddingTask = Required<EmbeddingTask>;

/** An embedding row: a query (or `anchor`) with its positive and optional hard negatives, or a `text1`/`text2` pair. */
export type EmbeddingRow =
  | { readonly query: string; readonly positive: string; readonly negatives?: readonly string[] }
  | { readonly anchor: string; readonly positive: string; readonly negatives?: readonly string[] }
  | { readonly text1: string; readonly text2: string };

/** `suffixTuning(...)` input: the method's options beside model, task, data, training, runDir. */
export interface SuffixTuningJob extends SuffixTuningOptions, JobInput<'embedding' | EmbeddingTask, EmbeddingRow> {
  /** `'embedding'` (default; the only task) or its options. */
  readonly task?: 'embedding' | EmbeddingTask;
}

export type SuffixTuningSpec = JobSpec<'suffix_tuning', ResolvedSuffixTuningOptions, ResolvedEmbeddingTask>;

// The documented options are the worker's SuffixTuningConfig (proto/schema/suffix_tuning.json), or this fails to compile.
true satisfies Same<ResolvedSuffixTuningOptions, SuffixTuningConfig>;

/** The worker's rule (SuffixTuningConfig.validate): gates keep an untrained suffix out of the text's positions only. */
function checkGatedPooling(c: { attention: string; pooling: string }, ctx: z.RefinementCtx): void {
  if (c.attention === 'gated' && c.pooling !== 'text_mean' && c.pooling !== 'first') {
    ctx.addIssue({ code: 'custom', path: ['pooling'], message: `attention 'gated' needs 'text_mean' or 'first', got '${c.pooling}'` });
  }
}

const configSchema = z.strictObject(suffixTuningFields).superRefine((c, ctx) => {
  checkInitText(c, ctx);
  checkGatedPooling(c, ctx);
});

// The documented task options are the worker's EmbeddingTaskOptions (proto/schema/embedding_task.json), or this
// fails to compile (its max_length comes from training.maxLength).
true satisfies Same<Omit<ResolvedEmbeddingTask, 'type'>, EmbeddingTaskConfig>;

const taskSchema = singleTask(
  'embedding',
  z.strictObject({ type: z.literal('embedding').default('embedding'), ...embeddingTaskFields }),
);

/**
 * A suffix-tuning job: validated (a {@link ValidationError} names each bad field, e.g.
 * `job.task.temperature: must be > 0`) and frozen.
 */
export const suffixTuning: (job: SuffixTuningJob) => SuffixTuningSpec = defineMethod({
  method: 'suffix_tuning',
  config: configSchema,
  task: taskSchema,
  taskToWire: ({ type, ...options }) => ({ task: type, taskOptions: options }),
});
