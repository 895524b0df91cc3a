/**
 * Passage-specific prompt tuning (PSPT): a frozen causal LM reranks passages by the likelihood of the
 * query given the passage (UPR), conditioned on a learned soft prompt plus passage-specific vectors.
 *
 * Wu et al., "Passage-specific Prompt Tuning for Passage Reranking in Question Answering with Large
 * Language Models" (SIGIR 2024 Gen-IR); UPR: Sachan et al. (2022). Options mirror
 * `PassageTuningConfig` (python/softprompt_worker/methods/passage_tuning.py); the task is `reranking`
 * (python/softprompt_worker/tasks/reranking.py).
 *
 * @example
 * const spec = passageTuning({
 *   model: { nameOrPath: 'meta-llama/Llama-3.2-1B' },
 *   data: { train: { path: 'nq-rerank.jsonl' }, evalFraction: 0.05 },
 *   training: { steps: 2000, batchSize: 4, lr: 1e-3 },
 *   runDir: 'runs/pspt',
 * });
 */
import { z } from 'zod';
import { type PassageTuningConfig, passageTuningFields } from '../gen/schema/passage-tuning.js';
import { type RerankingTaskConfig, rerankingTaskFields } from '../gen/schema/reranking-task.js';
import { type Same, singleTask } from '../spec/schema.js';
import { type JobInput, type JobSpec, defineMethod } from './spec.js';

/** The options of passage-specific prompt tuning. */
export interface PassageTuningOptions {
  /**
   * Soft prompt length `n`, 1..4096. Default: the token count of `initText` (the prompt then
   * starts as exactly UPR's instruction); otherwise the text's tokens are repeated/cut (PEFT's TEXT init).
   */
  readonly numVirtualTokens?: number;
  /** `'text'` (default: from `initText`; the paper starts from a hard prompt) or `'vocab'` (needs `numVirtualTokens`). */
  readonly init?: 'text' | 'vocab';
  /** The instruction the prompt starts from. Default: UPR's `" Please write a question based on this passage.\nQuestion:"` (scoring.py). */
  readonly initText?: string;
  /** @deprecated Use `init` (the name every method uses); giving both is refused. */
  readonly promptInit?: 'text' | 'vocab';
  /** @deprecated Use `initText`; giving both is refused. */
  readonly promptInitText?: string;
  /** `'pooled'` (default: `numPassageVectors` mean-pooled chunks), `'per_token'` (one vector per passage token) or `'none'` (ablation). */
  readonly passageVectors?: 'pooled' | 'per_token' | 'none';
  /** `m` for `'pooled'`, 1..65536. Default 8 (ours; the paper gives no value). */
  readonly numPassageVectors?: number;
  /** Bottleneck width `r`, 1..65536. Default 64 (~2·64·hidden parameters, adapter-sized: Houlsby et al. 2019). */
  readonly bottleneckDim?: number;
  /** Between the projections: `'gelu'` (default), `'relu'` or `'tanh'`. */
  readonly activation?: 'gelu' | 'relu' | 'tanh';
  /** `x + up(act(down(x)))` with `up` zero-initialised (default `true`), or `up(act(down(x)))`. */
  readonly residual?: boolean;
  /** `'passage_first'` (default, UPR's order: instruction after the passage) or `'prompt_first'`. */
  readonly order?: 'passage_first' | 'prompt_first';
  /** Hard text before the passage. Default `'Passage: '` (UPR). */
  readonly passagePrefix?: string;
  /** Joined to each query before tokenizing. Default `' '` (a word start for BPE; use `''` for SentencePiece). */
  readonly queryPrefix?: string;
  /** Start each row with the tokenizer's BOS token, when it has one. Default `true`. */
  readonly prependBos?: boolean;
  /** Longer passages are cut. Default 256 tokens. */
  readonly maxPassageTokens?: number;
  /** Longer queries are cut. Default 64 tokens. */
  readonly maxQueryTokens?: number;
}

/** The deprecated spellings of passage-tuning options, mapped to their names when a job is built. */
const DEPRECATED_ALIASES = { promptInit: 'init', promptInitText: 'initText' } as const;
type DeprecatedAlias = keyof typeof DEPRECATED_ALIASES;

export type ResolvedPassageTuningOptions = Required<Omit<PassageTuningOptions, 'numVirtualTokens' | 'initText' | DeprecatedAlias>> &
  Pick<PassageTuningOptions, 'numVirtualTokens' | 'initText'>;

/** Query-likelihood reranking: NLL of the query given its positive plus a margin over negatives. */
export interface RerankingTask {
  readonly type?: 'reranking';
  /** Negatives per query: `'both'` (default: its own hard negatives and in-batch positives), `'hard'` or `'in_batch'`. */
  readonly negatives?: 'both' | 'hard' | 'in_batch';
  /** Hard negatives sampled per row and step. Default 4. */
  readonly maxHardNegatives?: number;
  /** Weight of the NLL term. Default 1.0. */
  readonly nllWeight?: number;
  /** Weight of the margin term. Default 1.0. */
  readonly marginWeight?: number;
  /** Hinge margin between positive and negative scores. Default 0.5. */
  readonly margin?: number;
  /** `'mean'` (default: per-token log-likelihood) or `'sum'`. */
  readonly score?: 'mean' | 'sum';
  /** Pairs per forward pass when evaluating. Default 16. */
  readonly evalBatchSize?: number;
}

export type ResolvedRerankingTask = Required<RerankingTask>;

/** A reranking row: a query, its positive passage, optional hard negatives (give eval rows negatives). */
export interface RerankingRow {
  readonly query: string;
  readonly positive: string;
  readonly negatives?: readonly string[];
}

/** `passageTuning(...)` input: the method's options beside model, task, data, training, runDir. */
export interface PassageTuningJob extends PassageTuningOptions, JobInput<'reranking' | RerankingTask, RerankingRow> {
  /** `'reranking'` (default; the only task) or its options. */
  readonly task?: 'reranking' | RerankingTask;
}

export type PassageTuningSpec = JobSpec<'passage_tuning', ResolvedPassageTuningOptions, ResolvedRerankingTask>;

// The documented options are the worker's PassageTuningConfig (proto/schema/passage_tuning.json), or this fails to compile.
true satisfies Same<ResolvedPassageTuningOptions, PassageTuningConfig>;

const configSchema = z
  .strictObject({
    ...passageTuningFields,
    // Unset until the deprecated aliases are read (the transform below fills the default).
    init: passageTuningFields.init.unwrap().optional(),
    promptInit: passageTuningFields.init.unwrap().optional(),
    promptInitText: passageTuningFields.initText,
  })
  .superRefine((c, ctx) => {
    for (const [alias, name] of Object.entries(DEPRECATED_ALIASES) as [DeprecatedAlias, keyof typeof c][]) {
      if (c[alias] !== undefined && c[name] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [alias], message: `deprecated alias of ${name}; give only ${name}` });
      }
    }
    if ((c.init ?? c.promptInit) === 'vocab' && c.numVirtualTokens === undefined) {
      ctx.addIssue({ code: 'custom', path: ['numVirtualTokens'], message: "required when init is 'vocab'" });
    }
  })
  .transform(({ init, initText, promptInit, promptInitText, ...c }) => {
    const text = initText ?? promptInitText;
    return { ...c, init: init ?? promptInit ?? 'text', ...(text === undefined ? {} : { initText: text }) };
  });

// The documented task options are the worker's RerankingTaskOptions (proto/schema/reranking_task.json), or this fails to compile.
true satisfies Same<Omit<ResolvedRerankingTask, 'type'>, RerankingTaskConfig>;

const taskSchema = singleTask(
  'reranking',
  z.strictObject({ type: z.literal('reranking').default('reranking'), ...rerankingTaskFields }),
);

/**
 * A passage-tuning job: validated (a {@link ValidationError} names each bad field, e.g.
 * `job.bottleneckDim: must be > 0`) and frozen.
 */
export const passageTuning: (job: PassageTuningJob) => PassageTuningSpec = defineMethod({
  method: 'passage_tuning',
  config: configSchema,
  task: taskSchema,
  taskToWire: ({ type, ...options }) => ({ task: type, taskOptions: options }),
});
