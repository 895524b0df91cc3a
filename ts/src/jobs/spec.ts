/**
 * What every job builder shares: the fields beside the method's own options (model, task, data,
 * training, runDir, resumeFrom), validation into one frozen {@link JobSpec}, and its `train` body.
 *
 * A builder is one call: `defineMethod({ method, config, task, taskToWire })` returns
 * `(input) => JobSpec`. Its input is flat: the method's options next to the shared fields.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../core/errors.js';
import type { WireMap } from '../internal/wire.js';
import type { MethodName } from '../gen/schema/methods.js';
import { type trainRequestSchema, trainRequestFields } from '../gen/schema/train-request.js';
import { toSnake } from '../spec/case.js';
import { type DataOptions, type JsonRow, type ResolvedData, dataSchema } from './data.js';
import type { ModelSpec } from '../spec/model-spec.js';
import { deepFreeze, isRecord } from '../spec/schema.js';
import { type ResolvedTrainingOptions, type TrainingOptions, trainingOptionsSchema, trainingToWire } from './training-options.js';

export type { MethodName } from '../gen/schema/methods.js';

/** The fields every builder takes besides the method's options. */
export interface JobInput<Task, Row extends object> {
  /** The frozen base model. Required. */
  readonly model: ModelSpec;
  /** What to train the prompt for; each method documents its tasks and default. */
  readonly task?: Task;
  /** Training (and optional eval) rows. Required. */
  readonly data: DataOptions<Row>;
  /** Optimizer, schedule, batch shape, cadence; see {@link TrainingOptions}. Default: all defaults. */
  readonly training?: TrainingOptions;
  /**
   * Directory the worker writes: `job.json`, `events.jsonl`, `checkpoints/step-*.pb`. Required; a
   * relative path is resolved against `process.cwd()` when the spec is built.
   */
  readonly runDir: string;
  /**
   * A checkpoint with training state (any checkpoint a job wrote, a cancelled one included) to
   * continue: steps, optimizer, data order and RNG pick up where it stopped. The method options then
   * come from the checkpoint (give none, or the same ones). Default: start fresh.
   */
  readonly resumeFrom?: string;
  /**
   * Replace the checkpoints an earlier job left in `runDir`. Default false: a new job (not resuming) is
   * refused a `runDir` that holds checkpoints, so a finished run is never overwritten by mistake.
   */
  readonly overwrite?: boolean;
}

/** A validated, frozen training job: pass it to `sp.train(spec)`. Built by `promptTuning(...)` & co. */
export interface JobSpec<M extends MethodName = MethodName, Config = Readonly<Record<string, unknown>>, Task = unknown> {
  readonly method: M;
  readonly model: ModelSpec;
  /** The method's options with defaults filled in. */
  readonly config: Config;
  readonly task: Task;
  readonly data: ResolvedData;
  readonly training: ResolvedTrainingOptions;
  /** Absolute. */
  readonly runDir: string;
  /** Absolute, when set. */
  readonly resumeFrom?: string;
  /** Replace an earlier job's checkpoints in `runDir` (default false: such a runDir is refused). */
  readonly overwrite: boolean;
}

export interface MethodDefinition<M extends MethodName, Config, Task> {
  readonly method: M;
  /** The method's options: a strict object with defaults; cross-field rules in its refinements. */
  readonly config: z.ZodType<Config>;
  /** The task field (already defaulted when absent). */
  readonly task: z.ZodType<Task>;
  /** The worker's `task` name and its options (camelCase; translated to `task_options` here). */
  readonly taskToWire: (task: Task) => { task: string; taskOptions?: Record<string, unknown> };
}

// The worker's TrainRequest fields (proto/schema/train_request.json), except `data` (the SDK's sources, a
// path or rows it uploads, are not the wire's: docs/schema.md) and `training` (TrainingConfig and
// TrainingExtras, with the SDK's cross-field rules).
const baseShape = {
  model: trainRequestFields.model,
  data: dataSchema,
  training: trainingOptionsSchema,
  runDir: trainRequestFields.runDir.transform((p) => resolve(p)),
  resumeFrom: trainRequestFields.resumeFrom
    .unwrap()
    .transform((p) => resolve(p))
    .optional(),
  overwrite: trainRequestFields.overwrite,
};
const BASE_KEYS = new Set([...Object.keys(baseShape), 'task']);

/** The `train` body of each built spec, without `data` (uploaded rows get dataset ids at train time). */
const wireBodies = new WeakMap<object, WireMap>();

/** Makes a builder: validates the flat input, freezes the spec, remembers its wire body. */
export function defineMethod<M extends MethodName, Config, Task, Input>(def: MethodDefinition<M, Config, Task>) {
  const baseSchema = z.strictObject({ ...baseShape, task: def.task });
  return (input: Input): JobSpec<M, Config, Task> => {
    if (!isRecord(input)) {
      throw new ValidationError(`job: expected an object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
    }
    // fromEntries defines own properties: an own "__proto__" key stays a key (and an unknown field).
    const entries = Object.entries(input);
    const base: Record<string, unknown> = Object.fromEntries(entries.filter(([key]) => BASE_KEYS.has(key)));
    const options: Record<string, unknown> = Object.fromEntries(entries.filter(([key]) => !BASE_KEYS.has(key)));
    const b = baseSchema.safeParse(base);
    const c = def.config.safeParse(options);
    if (!b.success || !c.success) {
      const issues = [...(b.success ? [] : b.error.issues), ...(c.success ? [] : c.error.issues)];
      throw ValidationError.fromZod(new z.ZodError(issues), 'job');
    }
    const { resumeFrom, ...rest } = b.data;
    const spec = { method: def.method, ...rest, config: c.data, ...(resumeFrom === undefined ? {} : { resumeFrom }) };
    const { task, taskOptions } = def.taskToWire(spec.task);
    // Resuming takes the method's options from the checkpoint; only options the caller gave are
    // sent, for the worker to check against it.
    const sendConfig = resumeFrom === undefined || Object.values(options).some((v) => v !== undefined);
    // The worker's TrainRequest without `data` and `jobId` (added when the job starts), or this fails to
    // compile; undefined fields are left out of the body.
    const request = {
      model: spec.model,
      method: def.method,
      methodConfig: sendConfig ? (toSnake(c.data) as Record<string, unknown>) : undefined,
      task,
      taskOptions: taskOptions && (toSnake(taskOptions) as Record<string, unknown>),
      training: trainingToWire(spec.training),
      runDir: spec.runDir,
      overwrite: spec.overwrite || undefined,
      resumeFrom,
    } satisfies Omit<z.input<typeof trainRequestSchema>, 'data' | 'jobId'>;
    deepFreeze(spec, new Set(['rows']));
    wireBodies.set(spec, toSnake(request, ['overrides']) as WireMap);
    return spec as JobSpec<M, Config, Task>;
  };
}

/** The `train` request body of a built spec with its `data` body; throws for objects no builder made. */
export function trainBody(spec: JobSpec, data: WireMap): WireMap {
  assertJobSpec(spec);
  return { ...wireBodies.get(spec)!, data };
}

/** The job's fields as the worker names them (the `train` body without `data`): what the `plan` op reads. */
export function jobBody(spec: JobSpec): WireMap {
  assertJobSpec(spec);
  return { ...wireBodies.get(spec)! };
}

/** Throws {@link ValidationError} unless a builder made `spec`. */
export function assertJobSpec(spec: unknown): asserts spec is JobSpec {
  if (!isJobSpec(spec)) {
    throw new ValidationError('spec: not a job spec; build one with promptTuning(...), prefixTuning(...), pTuning(...), suffixTuning(...) or passageTuning(...)');
  }
}

/** True for specs made by a builder. */
export function isJobSpec(value: unknown): value is JobSpec {
  return typeof value === 'object' && value !== null && wireBodies.has(value);
}
