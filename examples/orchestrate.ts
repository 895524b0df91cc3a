/**
 * Train several methods and settings on one task, compare them on held-out data, keep the best.
 * The candidates train together in shared passes over the frozen model (`sp.trainMany`).
 *
 * The task is Debian package classification (data/debian/classify.*.jsonl: a package's synopsis and
 * description → its archive section, one of five; the eval file holds other source packages than the
 * train file, so nothing evaluated was trained on). Every candidate trains on the same rows with the
 * same step budget, evaluates on the same held-out rows at the end, and is ranked by held-out
 * accuracy (ties: lower held-out loss). The best checkpoint's path is printed and returned.
 *
 *     npx vite-node examples/orchestrate.ts                       # tiny offline model, 30 steps each
 *     npx vite-node examples/orchestrate.ts --model gpt2 --steps 300 --rows 1500 --out runs/orchestrate
 *
 * `--json` prints `{ ranked, best }` instead of the table (test/ts/examples/orchestrate.test.ts).
 *
 * `--model` takes a hub id or local path, `tiny:gpt2`, or a JSON model spec. With a tiny model
 * (random weights) the numbers mean nothing; the point is the loop. In your own code import from
 * 'softprompt' instead of '../ts/src/index.js'.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ClassificationRow,
  type JobSpec,
  type ModelSpec,
  Softprompt,
  prefixTuning,
  promptTuning,
} from '../ts/src/index.js';

/** One candidate: a name for the table and a job builder (the runner fills in data, steps, runDir). */
export interface Candidate {
  readonly name: string;
  readonly build: (job: CandidateJob) => JobSpec;
}

/** What every candidate shares. */
export interface CandidateJob {
  readonly model: ModelSpec;
  readonly labels: readonly string[];
  readonly train: readonly ClassificationRow[];
  readonly eval: readonly ClassificationRow[];
  readonly steps: number;
  readonly maxLength: number;
  readonly runDir: string;
}

/** The default grid: prompt tuning at two sizes / learning rates, and prefix tuning. */
export const CANDIDATES: readonly Candidate[] = [
  { name: 'prompt_tuning n=8 lr=0.03', build: (j) => promptTuning({ ...common(j), numVirtualTokens: 8, training: training(j, 0.03) }) },
  { name: 'prompt_tuning n=20 lr=0.3', build: (j) => promptTuning({ ...common(j), numVirtualTokens: 20, training: training(j, 0.3) }) },
  { name: 'prefix_tuning n=8 lr=0.01', build: (j) => prefixTuning({ ...common(j), numVirtualTokens: 8, training: training(j, 0.01) }) },
];

function common(j: CandidateJob) {
  return {
    model: j.model,
    task: { type: 'classification', labels: j.labels } as const,
    data: { train: { rows: j.train }, eval: { rows: j.eval } },
    runDir: j.runDir,
  };
}

function training(j: CandidateJob, lr: number) {
  return { steps: j.steps, lr, batchSize: 8, maxLength: j.maxLength, logEvery: Math.max(1, Math.floor(j.steps / 5)), seed: 0 };
}

/** One line of the result table. */
export interface Outcome {
  readonly name: string;
  /** Held-out accuracy after the last step (rank classification over the labels). */
  readonly accuracy: number;
  /** Held-out loss on the gold labels' tokens (lower is better; breaks accuracy ties). */
  readonly loss: number;
  readonly trainLoss: number;
  readonly seconds: number;
  readonly checkpoint: string;
}

export interface OrchestrateOptions {
  readonly model: ModelSpec;
  readonly labels: readonly string[];
  readonly train: readonly ClassificationRow[];
  readonly eval: readonly ClassificationRow[];
  /** Optimizer steps per candidate (the step cap). */
  readonly steps: number;
  /** A folder for the runs: one sub-folder per candidate. */
  readonly out: string;
  readonly maxLength?: number;
  readonly candidates?: readonly Candidate[];
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/**
 * Trains every candidate at once, in shared passes over the frozen model (`sp.trainMany`: each candidate
 * still gets its own optimizer, events, checkpoints and report, and the results it would get alone), and
 * ranks them; `ranked[0]` is the best.
 */
export async function orchestrate(sp: Softprompt, options: OrchestrateOptions): Promise<{ ranked: Outcome[]; best: Outcome }> {
  const candidates = options.candidates ?? CANDIDATES;
  const specs = candidates.map((candidate, i) =>
    candidate.build({
      model: options.model,
      labels: options.labels,
      train: options.train,
      eval: options.eval,
      steps: options.steps,
      maxLength: options.maxLength ?? 128,
      runDir: join(options.out, `${i}-${candidate.name.split(' ')[0]}`),
    }),
  );
  const jobs = sp.trainMany(specs);
  const outcomes = await Promise.all(
    jobs.map(async (job, i) => {
      const { name } = candidates[i]!;
      for await (const event of job) {
        if (event.type === 'step') options.log?.(`${name}: step ${event.step}/${options.steps} loss ${event.loss.toFixed(3)}`);
      }
      const { checkpoint, summary } = await job.result();
      const { accuracy, loss } = summary.metrics;
      if (accuracy === undefined || loss === undefined) throw new Error(`${name}: no held-out metrics in ${JSON.stringify(summary.metrics)}`);
      return { name, accuracy, loss, trainLoss: summary.finalLoss, seconds: summary.elapsedS, checkpoint } satisfies Outcome;
    }),
  );
  const ranked = [...outcomes].sort((a, b) => b.accuracy - a.accuracy || a.loss - b.loss);
  return { ranked, best: ranked[0]! };
}

/** The result table as text, best first. */
export function formatTable(ranked: readonly Outcome[]): string {
  const header = ['candidate', 'held-out acc', 'held-out loss', 'train loss', 'time'];
  const rows = ranked.map((o) => [o.name, o.accuracy.toFixed(3), o.loss.toFixed(3), o.trainLoss.toFixed(3), `${o.seconds.toFixed(1)} s`]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Reads `{ input, label }` rows from a JSONL file (other fields are dropped), at most `limit`. */
export function readRows(path: string, limit = Infinity): ClassificationRow[] {
  const rows: ClassificationRow[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (rows.length >= limit) break;
    if (line.trim() === '') continue;
    const { input, label } = JSON.parse(line) as ClassificationRow;
    rows.push({ input, label });
  }
  return rows;
}

const DATA = fileURLToPath(new URL('../data/debian/', import.meta.url));

/** The command line: `--model`, `--steps`, `--rows` (train rows; eval gets a fifth of it), `--out`,
 * `--max-length` (tokens per row), `--json`. */
async function main(argv: readonly string[]): Promise<Outcome> {
  const arg = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const model = parseModel(arg('model') ?? 'tiny:gpt2');
  const steps = Number(arg('steps') ?? 30);
  const rows = Number(arg('rows') ?? 200);
  const out = resolve(arg('out') ?? (await mkdtemp(join(tmpdir(), 'softprompt-orchestrate-'))));
  const labels = (JSON.parse(readFileSync(join(DATA, 'manifest.json'), 'utf8')) as { classify_labels: string[] }).classify_labels;

  const sp = await Softprompt.start(); // (`await using` once your runtime has it: Node 24+)
  try {
    const { ranked, best } = await orchestrate(sp, {
      model,
      maxLength: Number(arg('max-length') ?? 128),
      labels,
      train: readRows(join(DATA, 'classify.train.jsonl'), rows),
      eval: readRows(join(DATA, 'classify.eval.jsonl'), Math.max(20, Math.round(rows / 5))),
      steps,
      out,
      log: (line) => console.error(line),
    });
    if (argv.includes('--json')) {
      console.log(JSON.stringify({ ranked, best }));
      return best;
    }
    console.log(formatTable(ranked));
    console.log(`\nbest: ${best.name} (held-out accuracy ${best.accuracy.toFixed(3)})\ncheckpoint: ${best.checkpoint}`);
    return best;
  } finally {
    await sp.close();
  }
}

/** `gpt2` / `./dir` → a pretrained model, `tiny:gpt2` → a tiny one, `{...}` → a JSON spec. */
function parseModel(text: string): ModelSpec {
  if (text.startsWith('{')) return JSON.parse(text) as ModelSpec;
  if (text.startsWith('tiny:')) return { tiny: text.slice(5) } as ModelSpec;
  return { nameOrPath: text.startsWith('.') ? resolve(text) : text };
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
