/**
 * `make demo`: the main job. Prompt tuning of SmolLM2-135M-Instruct (the embedded default, no download)
 * on real held-out data: which Debian section (admin, games, net, science, sound) a package's
 * description belongs to (data/debian/classify.*.jsonl; the eval rows come from source packages no
 * training row comes from). The worker scores each section name by its likelihood after the text; the
 * untuned prompt is evaluated at step 0, the tuned one at the end, on the same held-out rows.
 *
 * It uses only the public SDK (plus the CLI's progress bar), so it doubles as an example. Settings are
 * sized for ~3–5 minutes on 2 CPU cores; a GPU is used when the worker sees one (device 'auto').
 *
 *   node ts/dist/demo.js            # the full demo
 *   node ts/dist/demo.js --quick    # a ~30-second smoke run of the same code path (SOFTPROMPT_DEMO=quick)
 *
 * SOFTPROMPT_DEMO_STEPS caps the steps and SOFTPROMPT_DEMO_RUNS sets the runs folder (default ./runs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProgressBar, formatDuration } from './cli/progress.js';
import { Output } from './cli/output.js';
import { type ClassificationRow, type Metrics, Softprompt, promptTuning } from './index.js';

/** The repository: the first folder above this file that holds data/debian (ts/dist/demo.js → ../..). */
function findRepo(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'data', 'debian', 'classify.train.jsonl'))) return dir;
    if (dirname(dir) === dir) throw new Error(`data/debian/classify.train.jsonl not found above ${from}`);
  }
}

const REPO = findRepo(dirname(fileURLToPath(import.meta.url)));
const DATA = join(REPO, 'data', 'debian');
const LABELS = ['admin', 'games', 'net', 'science', 'sound'];

/** What the full and quick runs do; why each number, in the README's Quick start. */
interface DemoSettings {
  readonly steps: number;
  readonly batchSize: number;
  readonly evalPerLabel: number; // held-out rows per section (balanced)
  readonly inputChars: number; // descriptions are cut to their first N characters (at a word)
  readonly virtualTokens: number;
  readonly lr: number;
}

const FULL: DemoSettings = { steps: 60, batchSize: 8, evalPerLabel: 10, inputChars: 120, virtualTokens: 16, lr: 0.1 };
const QUICK: DemoSettings = { steps: 2, batchSize: 2, evalPerLabel: 1, inputChars: 60, virtualTokens: 4, lr: 0.1 };

function settings(): DemoSettings {
  const quick = process.argv.includes('--quick') || process.env.SOFTPROMPT_DEMO === 'quick';
  const base = quick ? QUICK : FULL;
  const cap = Number(process.env.SOFTPROMPT_DEMO_STEPS);
  return Number.isInteger(cap) && cap > 0 ? { ...base, steps: Math.min(base.steps, cap) } : base;
}

function readRows(file: string): ClassificationRow[] {
  return readFileSync(join(DATA, file), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as ClassificationRow);
}

/**
 * The question in SmolLM2-Instruct's chat format, with the first `chars` characters of the description
 * (cut at a word); the answer is the section name, then `<|im_end|>` (the tokenizer's EOS, which the
 * task appends). The untuned and the tuned prompt see exactly this text: the soft prompt goes before it.
 */
function framed(row: ClassificationRow, chars: number): ClassificationRow {
  const text = row.input.replace(/\s+/g, ' ');
  const cut = text.length <= chars ? text : `${text.slice(0, text.lastIndexOf(' ', chars))} ...`;
  const question = `Which Debian section is this package in: ${LABELS.join(', ')}?\n${cut}`;
  return { input: `<|im_start|>user\n${question}<|im_end|>\n<|im_start|>assistant\n`, label: row.label };
}

/** The first `perLabel` rows of each label, in file order (the files are in a hash order: no cherry-picking). */
function balanced(rows: ClassificationRow[], perLabel: number): ClassificationRow[] {
  const taken = new Map<string, number>();
  return rows.filter((r) => {
    const n = taken.get(r.label) ?? 0;
    taken.set(r.label, n + 1);
    return n < perLabel;
  });
}

const pct = (x: number | undefined): string => (x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | undefined): string => (x === undefined ? '—' : x.toFixed(3));

async function main(): Promise<number> {
  const s = settings();
  const out = new Output(false);
  const started = performance.now();
  await using sp = await Softprompt.start();
  const caps = sp.capabilities;
  out.note(`worker ${sp.workerVersion} ready in ${((performance.now() - started) / 1000).toFixed(1)} s: python ${caps.python}, torch ${caps.torch}, devices ${caps.devices.join(', ')}`);

  const train = readRows('classify.train.jsonl').map((r) => framed(r, s.inputChars));
  const heldOut = balanced(readRows('classify.eval.jsonl'), s.evalPerLabel).map((r) => framed(r, s.inputChars));
  const runDir = join(resolve(process.env.SOFTPROMPT_DEMO_RUNS ?? join(REPO, 'runs')), `demo-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const spec = promptTuning({
    model: { embedded: 'smollm2' },
    numVirtualTokens: s.virtualTokens,
    init: 'text',
    initText: 'Classify the Debian package by its section:',
    task: { type: 'classification', labels: LABELS },
    data: { train: { rows: train }, eval: { rows: heldOut } },
    training: { steps: s.steps, batchSize: s.batchSize, lr: s.lr, maxLength: 96, logEvery: 1 },
    runDir,
  });
  out.note(`prompt tuning SmolLM2-135M-Instruct (embedded) on Debian sections ${LABELS.join(' / ')}: ` +
    `${s.steps} steps × ${s.batchSize} rows, ${heldOut.length} held-out rows`);

  const job = sp.train(spec);
  const bar = new ProgressBar(out, { tty: process.stderr.isTTY === true, columns: process.stderr.columns ?? 100, every: Math.max(1, Math.round(s.steps / 10)) });
  let baseline: Metrics | undefined;
  let tuned: Metrics | undefined;
  let params = '';
  let total = s.steps;
  try {
    for await (const e of job.events()) {
      if (e.type === 'started') {
        params = `${e.trainableParams.toLocaleString('en-US')} trainable parameters (${(e.trainableFraction * 100).toPrecision(2)}% of ${e.totalParams.toLocaleString('en-US')})`;
        out.note(`training on ${e.device} (${e.dtype}): ${params}`);
        out.note(`evaluating the untuned prompt on ${heldOut.length} held-out rows (${heldOut.length * LABELS.length} scored sequences)…`);
        total = e.totalSteps;
      } else if (e.type === 'step') {
        bar.step(e);
      } else if (e.type === 'eval') {
        if (e.step === 0) baseline = e.metrics;
        else tuned = e.metrics;
        out.note(`eval @ step ${e.step}: accuracy ${pct(e.metrics.accuracy)}, loss ${num(e.metrics.loss)}`);
        if (e.step === 0) bar.start(total, 0); // after the baseline, so the ETA times training only
      } else if (e.type === 'done') {
        bar.stop();
      }
    }
  } finally {
    bar.stop();
  }
  const result = await job.result();
  const elapsed = (performance.now() - started) / 1000;

  const rows = [
    ['', 'untuned prompt', 'tuned prompt'],
    [`accuracy (${heldOut.length} held-out rows, chance 20%)`, pct(baseline?.accuracy), pct(tuned?.accuracy)],
    ['loss per label token', num(baseline?.loss), num(tuned?.loss)],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  console.log('');
  for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   '));
  console.log('');
  console.log(`${result.status}: ${result.summary.steps} steps, ${params}; ${formatDuration(elapsed)} in all (training ${formatDuration(result.summary.elapsedS)})`);
  console.log(`run folder: ${relative(process.cwd(), runDir) || '.'}`);
  console.log(`report:     ${result.report ? relative(process.cwd(), result.report) : '(not written: see the warning above)'}`);
  if (result.status !== 'completed' || baseline?.accuracy === undefined || tuned?.accuracy === undefined) return 1;
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
