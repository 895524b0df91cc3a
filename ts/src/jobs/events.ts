/**
 * The events of a training job and its final result, as the TS side sees them: a discriminated union
 * on `type`, fields in camelCase. The worker sends snake_case bodies with an `event` key
 * (python/softprompt_worker/training.py, ops/train.py); {@link decodeTrainingEvent} and
 * {@link decodeTrainingResult} are the one place they are translated. Metric names (`token_accuracy`,
 * `ndcg@10`) are data, not fields: they keep the worker's spelling.
 */
import { z } from 'zod';
import { ProtocolError, type WorkerCrashedError } from '../core/errors.js';
import type { WireMap } from '../internal/wire.js';
import { toCamel } from '../spec/case.js';

/** Metric name → value, as the task reports them (`loss`, `accuracy`, `exact_match`, `ndcg@10`, ...). */
export type Metrics = Readonly<Record<string, number>>;

/** The rows were loaded and checked; training starts next. */
export interface DataEvent {
  readonly type: 'data';
  readonly trainRows: number;
  readonly evalRows: number;
  /** Rows skipped under `onBadRow: 'skip'`. */
  readonly skipped: number;
  /** The first skipped rows: `where` is `file:line` or `dataset[i]`. */
  readonly skippedRows: readonly { readonly where: string; readonly error: string }[];
}

/**
 * The worker already runs as many training jobs as it shares its device between (`--max-training-jobs`,
 * default 2); this one waits and starts when one of them ends. Sent once, before `data`.
 */
export interface QueuedEvent {
  readonly type: 'queued';
  /** 1 = next to start. */
  readonly position: number;
  /** How many jobs the worker runs at once. */
  readonly running: number;
  /**
   * Why it waits although a slot may be free: on a GPU, the running jobs leave too little free memory for
   * its planned need (`needs about 9.1 GiB, 6.0 GiB free on cuda:0: ...`). It starts when one ends.
   */
  readonly reason?: string;
}

/** The method is attached and the optimizer built. */
export interface StartedEvent {
  readonly type: 'started';
  readonly trainableParams: number;
  /** Trainable parameters ÷ base model parameters. */
  readonly trainableFraction: number;
  readonly totalParams: number;
  /** `'cpu'`, `'cuda:0'`, ... */
  readonly device: string;
  /** Compute dtype: `'f32'` or `'bf16'`. */
  readonly dtype: string;
  readonly totalSteps: number;
  /** 0, or the checkpoint's step when resuming. */
  readonly startStep: number;
}

/** Every `training.logEvery` optimizer steps, and at the last one. */
export interface StepEvent {
  readonly type: 'step';
  readonly step: number;
  /** Mean training loss over the micro-batches since the previous step event. */
  readonly loss: number;
  /** Learning rate of this step. */
  readonly lr: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  readonly tokensPerS: number;
  /** Peak device memory (CUDA) or peak resident set size (CPU), in bytes. */
  readonly memoryBytes: number;
}

/** Every `training.evalEvery` steps and at the end, when there are eval rows. */
export interface EvalEvent {
  readonly type: 'eval';
  readonly step: number;
  readonly metrics: Metrics;
}

/**
 * The evaluation just reported is the best so far on `metric` (`training.selectBy`); its prompt was saved
 * to `checkpoint` (`<runDir>/checkpoints/best.pb`, replaced at each new best). The step-0 evaluation of
 * the untuned prompt is a candidate too.
 */
export interface BestEvent {
  readonly type: 'best';
  readonly step: number;
  readonly metric: string;
  readonly value: number;
  readonly checkpoint: string | null;
}

/** The evaluation model selection chose: the best value of `training.selectBy`. */
export interface BestCheckpoint {
  /** 0 when no trained step beat the untuned prompt. */
  readonly step: number;
  readonly metrics: Metrics;
  /** The selected metric's value. */
  readonly value: number;
  /** `<runDir>/checkpoints/best.pb` (no training state: load it, do not resume from it). */
  readonly checkpoint: string | null;
}

/** How model selection went: sent once, before `done`, and kept in the summary. */
export interface SelectionOutcome {
  /** The metric compared, or `null` when selection was off (no eval rows, or `selectBy: 'last'`). */
  readonly by: string | null;
  /** `false` when no trained step beat the untuned prompt's step-0 evaluation; `null` without one. */
  readonly beatBaseline: boolean | null;
  /** The step early stopping ended the run at, or `null`. */
  readonly stoppedEarlyAt: number | null;
  /** In words, for people: the best step, or why there is none, or that training did not help. */
  readonly message: string;
}

/** Model selection is over (sent just before `done`). */
export interface SelectionEvent extends SelectionOutcome {
  readonly type: 'selection';
  readonly best: BestCheckpoint | null;
}

/** A checkpoint was written (every `training.checkpointEvery` steps, at the end, on cancel). */
export interface CheckpointEvent {
  readonly type: 'checkpoint';
  readonly step: number;
  /** Absolute path of the `.pb` checkpoint (resumable). */
  readonly path: string;
}

/** How a run went. */
export interface TrainingSummary {
  readonly status: 'completed' | 'cancelled';
  /** Optimizer steps done (resumed runs count from the start of the original run). */
  readonly steps: number;
  readonly totalSteps: number;
  /** The last logged training loss (NaN when no step was logged). */
  readonly finalLoss: number;
  /** The last evaluation's metrics (empty without eval rows, or when cancelled before any). */
  readonly metrics: Metrics;
  /** The untuned prompt's metrics from the step-0 evaluation (empty when skipped or resumed). */
  readonly baselineMetrics: Metrics;
  readonly tokens: number;
  readonly epochs: number;
  readonly elapsedS: number;
  /** The final checkpoint, or `null` when none was written. */
  readonly checkpoint: string | null;
  /** The best evaluation (`training.selectBy`), or `null` when selection was off or nothing was evaluated. */
  readonly best: BestCheckpoint | null;
  /** How selection went (absent from workers older than model selection). */
  readonly selection?: SelectionOutcome;
}

/** The run ended (completed or cancelled); the job's result follows. */
export interface DoneEvent {
  readonly type: 'done';
  readonly summary: TrainingSummary;
}

/**
 * The worker died during the job; the job goes on by itself in a restarted worker (jobs/resume.ts).
 * Sent by the SDK, not the worker. The events that follow are the resumed run's own (data, started
 * with `startStep` = `fromStep`, step ...): steps after `fromStep` that were reported before the
 * crash are done again, so their numbers repeat.
 */
export interface RestartedEvent {
  readonly type: 'restarted';
  /** 1 for the first resume of this job, up to `TrainOptions.maxResumes`. */
  readonly attempt: number;
  /** The checkpoint the job continues from, or `null` when it starts over (no checkpoint yet). */
  readonly fromCheckpoint: string | null;
  /** That checkpoint's step (0 when starting over). */
  readonly fromStep: number;
  /** How the worker ended (exit code or signal, the end of its stderr). */
  readonly cause: WorkerCrashedError;
}

/**
 * Everything a training job reports while it runs, in this order: (queued,) data, started, step/eval/checkpoint...,
 * done; after a worker crash, `restarted` and the resumed run's data, started, ... again.
 */
export type TrainingEvent =
  | QueuedEvent | DataEvent | StartedEvent | StepEvent | EvalEvent | BestEvent | CheckpointEvent | SelectionEvent | DoneEvent | RestartedEvent;

/** `await job.result()`: how the job ended. A cancelled job still has a usable, resumable checkpoint. */
export interface TrainingResult {
  readonly status: 'completed' | 'cancelled';
  /** The last checkpoint written (absolute path): resume from this one. */
  readonly checkpoint: string;
  /**
   * The best evaluation and its saved prompt (`training.selectBy`; transformers' `load_best_model_at_end`):
   * what `sp.prompts.load(name, result)` loads. `null` when selection was off (no eval rows, `selectBy: 'last'`).
   */
  readonly best: BestCheckpoint | null;
  readonly summary: TrainingSummary;
  /**
   * `<runDir>/report.html`, written when the job ended (reports/write.ts); absent when it could not
   * be written (the reason is logged as a warning).
   */
  readonly report?: string;
}

// Any float the worker sends, NaN included (zod's number() refuses NaN and ±Infinity).
const float = z.custom<number>((v) => typeof v === 'number', { error: 'expected a number' });
const int = z.number().int();
const metrics = z.record(z.string(), float);
const status = z.enum(['completed', 'cancelled']);
const bestSchema = z.object({ step: int, metrics, value: float, checkpoint: z.string().nullable() });
const selectionFields = {
  by: z.string().nullable(),
  beatBaseline: z.boolean().nullable(),
  stoppedEarlyAt: int.nullable(),
  message: z.string(),
};

const summarySchema = z.object({
  status,
  steps: int,
  totalSteps: int,
  finalLoss: float.nullable().transform((v) => v ?? Number.NaN), // null when no step was logged (training.py)
  metrics,
  baselineMetrics: metrics.default({}),
  tokens: int,
  epochs: float,
  elapsedS: float,
  checkpoint: z.string().nullable(),
  best: bestSchema.nullable().default(null),
  selection: z.object(selectionFields).optional(),
});

const eventSchemas = {
  queued: z.object({ position: int, running: int, reason: z.string().optional() }),
  data: z.object({
    trainRows: int,
    evalRows: int,
    skipped: int,
    skippedRows: z.array(z.object({ where: z.string(), error: z.string() })),
  }),
  started: z.object({
    trainableParams: int,
    trainableFraction: float,
    totalParams: int,
    device: z.string(),
    dtype: z.string(),
    totalSteps: int,
    startStep: int,
  }),
  step: z.object({ step: int, loss: float, lr: float, gradNorm: float, tokensPerS: float, memoryBytes: int }),
  eval: z.object({ step: int, metrics }),
  best: z.object({ step: int, metric: z.string(), value: float, checkpoint: z.string().nullable() }),
  checkpoint: z.object({ step: int, path: z.string() }),
  selection: z.object({ ...selectionFields, best: bestSchema.nullable() }),
  done: z.object({ summary: summarySchema }),
} as const;

const resultSchema = z.object({ status, checkpoint: z.string(), best: bestSchema.nullable().default(null), summary: summarySchema });

// Data maps: their keys are names chosen by tasks and users, never translated.
const KEEP = ['metrics', 'baseline_metrics'];

/**
 * A worker event body → a {@link TrainingEvent}; `undefined` for event kinds this SDK does not know
 * (a newer worker may send more). Throws {@link ProtocolError} for a known kind with a bad shape.
 */
export function decodeTrainingEvent(body: WireMap): TrainingEvent | undefined {
  const { event, ...fields } = toCamel(body, KEEP) as Record<string, unknown>;
  if (typeof event !== 'string' || !Object.hasOwn(eventSchemas, event)) return undefined;
  const type = event as keyof typeof eventSchemas;
  const parsed = eventSchemas[type].safeParse(fields);
  if (!parsed.success) throw new ProtocolError(`train event '${type}': ${z.prettifyError(parsed.error)}`);
  return { type, ...parsed.data } as TrainingEvent;
}

/** The worker's final `train` reply → a {@link TrainingResult}. */
export function decodeTrainingResult(body: WireMap): TrainingResult {
  const parsed = resultSchema.safeParse(toCamel(body, KEEP));
  if (!parsed.success) throw new ProtocolError(`train reply: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
