/**
 * A run folder read back: `job.json` (the `train` body as the worker received it) and `events.jsonl`
 * (one event per line, each with the worker's `time` in Unix seconds; python/softprompt_worker/runs.py).
 *
 * Events are decoded by the same function the live job uses ({@link decodeTrainingEvent}), so a report
 * shows exactly what `job.events()` showed. Reading is forgiving, since a report is most wanted for a
 * run that went wrong: a line cut short by a crash, or an event this SDK cannot read, is counted in
 * `unreadableLines` and skipped; a folder without `events.jsonl` gives a run with no events. A resumed
 * run appends to the same file, so a step logged twice keeps its latest value.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError } from '../core/errors.js';
import type { WireMap } from '../internal/wire.js';
import {
  type BestEvent,
  type CheckpointEvent,
  type DataEvent,
  type EvalEvent,
  type Metrics,
  type SelectionEvent,
  type StartedEvent,
  type StepEvent,
  type TrainingSummary,
  decodeTrainingEvent,
} from '../jobs/events.js';

/** An event as it was logged, with the worker's clock (Unix seconds). */
export type Timed<E> = E & { readonly time: number };

/** The worker's `error` event: why a run failed. */
export interface RunError {
  readonly time: number;
  readonly code: string;
  readonly message: string;
}

/** Everything a report shows about one run folder. */
export interface RunData {
  readonly runDir: string;
  /** `job.json`, as written (snake_case, as the worker received it). */
  readonly job: Readonly<Record<string, unknown>>;
  readonly data?: Timed<DataEvent>;
  /** One per start: more than one when the run was resumed into the same folder. */
  readonly starts: readonly Timed<StartedEvent>[];
  /** By step, ascending; a step logged twice keeps its latest value. */
  readonly steps: readonly Timed<StepEvent>[];
  /** By step, ascending, the baseline (step 0) included. */
  readonly evals: readonly Timed<EvalEvent>[];
  /**
   * The metrics before any training: a `baseline` event (`{"event": "baseline", "metrics": {...}}`),
   * else an `eval` event at step 0 of a fresh run.
   */
  readonly baseline?: Metrics;
  readonly checkpoints: readonly Timed<CheckpointEvent>[];
  /** The latest `best` event: the best evaluation so far (`training.selectBy`). */
  readonly best?: Timed<BestEvent>;
  /** How model selection ended (a finished run). */
  readonly selection?: Timed<SelectionEvent>;
  readonly summary?: TrainingSummary;
  readonly doneTime?: number;
  readonly error?: RunError;
  /** `'failed'` with an `error` event; `'incomplete'` when the log just stops (still running, or the worker died). */
  readonly status: TrainingSummary['status'] | 'failed' | 'incomplete';
  /** Worker clock of the first and the last event, when there are events. */
  readonly firstTime?: number;
  readonly lastTime?: number;
  /** Lines that were not JSON or not a readable event (skipped). */
  readonly unreadableLines: number;
}

/** Reads `runDir/job.json` and `runDir/events.jsonl`. Throws {@link ValidationError} when there is no job.json. */
export async function readRunDir(runDir: string): Promise<RunData> {
  const job = await readJob(runDir);
  const text = await readFile(join(runDir, 'events.jsonl'), 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return { runDir, job, ...collect(text.split('\n')) };
}

async function readJob(runDir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(runDir, 'job.json'), 'utf8');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'has no job.json: not a run folder' : `job.json cannot be read (${(error as Error).message})`;
    throw new ValidationError(`runDir: ${JSON.stringify(runDir)} ${why}`, undefined, { cause: error });
  }
  try {
    const job: unknown = JSON.parse(text);
    if (typeof job === 'object' && job !== null && !Array.isArray(job)) return job as Record<string, unknown>;
  } catch (error) {
    throw new ValidationError(`runDir: ${JSON.stringify(runDir)}: job.json is not JSON (${(error as Error).message})`, undefined, { cause: error });
  }
  throw new ValidationError(`runDir: ${JSON.stringify(runDir)}: job.json is not a JSON object`);
}

type Collected = Omit<RunData, 'runDir' | 'job'>;

function collect(lines: readonly string[]): Collected {
  const starts: Timed<StartedEvent>[] = [];
  const steps = new Map<number, Timed<StepEvent>>();
  const evals = new Map<number, Timed<EvalEvent>>();
  const checkpoints: Timed<CheckpointEvent>[] = [];
  let best: Timed<BestEvent> | undefined;
  let selection: Timed<SelectionEvent> | undefined;
  let data: Timed<DataEvent> | undefined;
  let summary: TrainingSummary | undefined;
  let doneTime: number | undefined;
  let error: RunError | undefined;
  let baselineEvent: Metrics | undefined;
  let firstTime: number | undefined;
  let lastTime: number | undefined;
  let unreadableLines = 0;

  for (const line of lines) {
    if (line.trim() === '') continue;
    const raw = parseLine(line);
    if (raw === undefined) {
      unreadableLines++;
      continue;
    }
    const time = typeof raw['time'] === 'number' ? raw['time'] : NaN;
    if (Number.isFinite(time)) {
      firstTime ??= time;
      lastTime = time;
    }
    const { time: _time, ...body } = raw;
    if (body['event'] === 'error') {
      error = { time, code: String(body['code'] ?? 'unknown'), message: String(body['message'] ?? '') };
      continue;
    }
    if (body['event'] === 'baseline') {
      const metrics = numericMap(body['metrics']);
      if (metrics) baselineEvent = metrics;
      else unreadableLines++;
      continue;
    }
    let event;
    try {
      event = decodeTrainingEvent(body as WireMap);
    } catch {
      unreadableLines++;
      continue;
    }
    if (event === undefined) continue; // a kind this SDK does not know yet: not an error
    const timed = { ...event, time };
    switch (timed.type) {
      case 'data':
        data = timed;
        break;
      case 'started':
        starts.push(timed);
        break;
      case 'step':
        steps.set(timed.step, timed);
        break;
      case 'eval':
        evals.set(timed.step, timed);
        break;
      case 'checkpoint':
        checkpoints.push(timed);
        break;
      case 'best':
        best = timed;
        break;
      case 'selection':
        selection = timed;
        break;
      case 'done':
        summary = timed.summary;
        doneTime = time;
        break;
    }
  }
  const byStep = <E extends { step: number }>(m: Map<number, E>) => [...m.values()].sort((a, b) => a.step - b.step);
  const freshStart = starts[0]?.startStep === 0;
  const baseline = baselineEvent ?? (freshStart ? evals.get(0)?.metrics : undefined);
  const status = summary?.status ?? (error ? 'failed' : 'incomplete');
  return {
    ...(data ? { data } : {}),
    starts,
    steps: byStep(steps),
    evals: byStep(evals),
    ...(baseline ? { baseline } : {}),
    checkpoints,
    ...(best ? { best } : {}),
    ...(selection ? { selection } : {}),
    ...(summary ? { summary } : {}),
    ...(doneTime !== undefined ? { doneTime } : {}),
    ...(error ? { error } : {}),
    status,
    ...(firstTime !== undefined ? { firstTime } : {}),
    ...(lastTime !== undefined ? { lastTime } : {}),
    unreadableLines,
  };
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function numericMap(value: unknown): Metrics | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value);
  return entries.every(([, v]) => typeof v === 'number') ? Object.fromEntries(entries) as Metrics : undefined;
}
