/**
 * The tasks prompt and prefix tuning train (python/softprompt_worker/tasks/generation.py and
 * classification.py): the soft prompt makes the frozen LM produce a target text, or a label's word.
 */
import { z } from 'zod';
import { type ClassificationTaskConfig, classificationTaskFields } from '../gen/schema/classification-task.js';
import { type GenerationTaskConfig, generationTaskFields } from '../gen/schema/generation-task.js';
import { type Same, dispatch } from '../spec/schema.js';

/** A generation row: the model should continue `input` with `target`. */
export interface GenerationRow {
  readonly input: string;
  readonly target: string;
}

/** A classification row: `label` is one of the task's `labels`. */
export interface ClassificationRow {
  readonly input: string;
  readonly label: string;
}

/** Train the LM to continue each row's `input` with its `target` (loss on the target tokens only). */
export interface GenerationTask {
  readonly type: 'generation';
}

/**
 * Rank classification by verbalizers (Lester et al. 2021 treat classification as text-to-text): every
 * label is scored by its log-likelihood after the input and the highest wins.
 */
export interface ClassificationTask {
  readonly type: 'classification';
  /** The verbalizers, at least two, distinct (`['positive', 'negative']`). Required. */
  readonly labels: readonly string[];
  /**
   * `'lm'` (default; Lester et al.): LM loss on the gold label's tokens, one sequence per row.
   * `'ranking'`: cross-entropy over the labels' log-likelihoods (len(labels)× the cost).
   */
  readonly loss?: 'lm' | 'ranking';
}

/** `'generation'` (default) or a task object. */
export type LmTask = 'generation' | GenerationTask | ClassificationTask;
export type ResolvedLmTask = GenerationTask | Required<ClassificationTask>;

// The documented task options are the worker's (proto/schema/{generation,classification}_task.json), or this
// fails to compile (their max_length comes from training.maxLength).
true satisfies Same<Omit<GenerationTask, 'type'>, GenerationTaskConfig>;
true satisfies Same<Omit<Required<ClassificationTask>, 'type'>, ClassificationTaskConfig>;

const generationSchema = z.strictObject({ type: z.literal('generation'), ...generationTaskFields });
const classificationSchema = z.strictObject({
  type: z.literal('classification'),
  ...classificationTaskFields,
  labels: classificationTaskFields.labels.refine((l) => new Set(l).size === l.length, { error: 'labels must be distinct' }),
});
const generationOnly = z.literal('generation', { error: "expected 'generation' or { type: 'generation' | 'classification', ... }" });

export const lmTaskSchema: z.ZodType<ResolvedLmTask> = dispatch<ResolvedLmTask>((v) => {
  if (v === undefined) return z.undefined().transform(() => ({ type: 'generation' as const }));
  if (typeof v === 'string') return generationOnly.transform(() => ({ type: 'generation' as const }));
  const type = (v as { type?: unknown } | null)?.type;
  return (type === 'classification' ? classificationSchema : generationSchema) as z.ZodType<ResolvedLmTask>;
});

/** The worker's `task` and `task_options`. */
export function lmTaskToWire(task: ResolvedLmTask): { task: string; taskOptions?: Record<string, unknown> } {
  if (task.type === 'generation') return { task: 'generation' };
  return { task: 'classification', taskOptions: { labels: [...task.labels], loss: task.loss } };
}
