/** `softprompt train <job-file>`: validate a job file with the SDK's builders and run it with a progress bar. */
import { relative } from 'node:path';
import { METHOD_NAMES } from '../../gen/schema/methods.js';
import type { Metrics, TrainingEvent, TrainingResult } from '../../jobs/events.js';
import type { JobSpec } from '../../jobs/spec.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { buildJob, loadDocument } from '../job-file.js';
import type { Output } from '../output.js';
import { ProgressBar, formatDuration } from '../progress.js';
import { formatMetrics } from '../format.js';

export const train: Command = {
  name: 'train',
  summary: 'train a soft prompt from a job file (JSON or YAML), with a progress bar; Ctrl-C cancels cleanly',
  usage: 'train <job.json|job.yaml> [options]',
  description: `A job file holds { method, ...the builder's fields }: method is one of
${METHOD_NAMES.join(', ')}, and the other fields are exactly those of promptTuning({...}) & co.
(model, task, data, training, runDir, resumeFrom and the method's options), validated by the same
schemas. Relative paths in the file are relative to the file's folder.

  method: prompt_tuning
  model: { nameOrPath: gpt2 }
  numVirtualTokens: 20
  task: { type: classification, labels: [positive, negative] }
  data: { train: { path: sst2.jsonl }, evalFraction: 0.1 }
  training: { steps: 500, lr: 0.03, checkpointEvery: 100 }
  runDir: runs/sst2

Progress goes to stderr: redrawn in place on a terminal, a line every --progress-every steps
elsewhere; eval and checkpoint events are printed as they come. Ctrl-C asks the worker to stop after
the current micro-batch: it writes a resumable checkpoint and the command exits with 130 (resume with
--resume <checkpoint>). A second Ctrl-C quits at once.

At the end: the untuned prompt's held-out metrics beside the tuned one's (when the job evaluated
both), the last checkpoint and the run report (<runDir>/report.html). A job runs on a worker of its
own (not the warm one), or on --connect's.

--json: the job's events as JSON lines on stdout ({"type":"data"|"started"|"step"|"eval"|
"checkpoint"|"done", ...}), then {"type":"result","status","checkpoint","summary","report"}.`,
  options: {
    'run-dir': { type: 'string', arg: 'dir', help: "override the job's runDir (default: the job's, else runs/<file>-<time>-<random> beside the job file, new each run)" },
    overwrite: { type: 'boolean', help: "replace the checkpoints an earlier job left in the runDir (without it such a runDir is refused)" },
    resume: { type: 'string', arg: 'checkpoint', help: "continue from a checkpoint a job wrote (sets resumeFrom)" },
    'dry-run': { type: 'boolean', help: 'validate the job file and print the resolved job; start nothing' },
    'progress-every': { type: 'string', arg: 'n', help: 'without a terminal: steps between progress lines. Default: a twentieth of the run' },
  },
  positionals: [1, 1],
  ownWorker: true,
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const file = args.positionals[0]!;
  const every = args.int('progress-every');
  const spec = buildJob(await loadDocument(file), file, {
    ...(args.string('run-dir') !== undefined ? { runDir: args.string('run-dir')! } : {}),
    ...(args.string('resume') !== undefined ? { resumeFrom: args.string('resume')! } : {}),
    ...(args.bool('overwrite') ? { overwrite: true } : {}),
  });
  if (args.bool('dry-run')) {
    const shown = resolvedForDisplay(spec);
    if (out.json) await out.data(shown);
    else out.print(`${file}: valid ${spec.method} job\n${JSON.stringify(shown, (k, v: unknown) => (k === 'rows' ? '[rows]' : v), 2)}`);
    return EXIT.ok;
  }

  out.note(args.string('connect') ? `connecting to ${args.string('connect')}…` : 'starting the worker (Python imports torch: a few seconds)…');
  const sp = await ctx.client();
  const job = sp.train(spec, { signal: ctx.signal });
  const stderr = out.stderr;
  const bar = out.json
    ? undefined
    : new ProgressBar(out, { tty: stderr.isTTY === true, ...(stderr.columns ? { columns: stderr.columns } : {}), ...(every ? { every } : {}) });
  try {
    for await (const event of job.events()) {
      if (out.json) await out.data(event);
      else describe(event, out, bar!);
    }
  } finally {
    bar?.stop();
  }
  const result = await job.result();
  if (out.json) await out.data({ type: 'result', ...result });
  else summarize(result, file, out);
  return result.status === 'cancelled' ? EXIT.cancelled : EXIT.ok;
}

function describe(e: TrainingEvent, out: Output, bar: ProgressBar): void {
  switch (e.type) {
    case 'queued':
      out.note(e.reason
        ? `queued: ${e.reason}; this one is number ${e.position} in line`
        : `queued: the worker already trains ${e.running} job${e.running === 1 ? '' : 's'} at once; this one is number ${e.position} in line`);
      break;
    case 'data':
      out.note(`data: ${e.trainRows} training rows, ${e.evalRows} eval rows${e.skipped ? `, ${e.skipped} skipped` : ''}`);
      for (const s of e.skippedRows) out.note(`  skipped ${s.where}: ${s.error}`);
      break;
    case 'started': {
      const pct = (e.trainableFraction * 100).toPrecision(2);
      const from = e.startStep > 0 ? `, resuming at step ${e.startStep}` : '';
      out.note(`training on ${e.device} (${e.dtype}): ${e.trainableParams.toLocaleString('en-US')} trainable parameters (${pct}% of ${e.totalParams.toLocaleString('en-US')}), ${e.totalSteps} steps${from}`);
      bar.start(e.totalSteps, e.startStep);
      break;
    }
    case 'step':
      bar.step(e);
      break;
    case 'eval':
      out.note(`eval @ step ${e.step}: ${formatMetrics(e.metrics)}`);
      break;
    case 'checkpoint':
      out.note(`checkpoint @ step ${e.step}: ${e.path}`);
      break;
    case 'best':
      out.note(`best so far @ step ${e.step}: ${e.metric} ${formatValue(e.metric, e.value)}`);
      break;
    case 'selection':
      if (e.beatBaseline === false) out.note(`warning: ${e.message}`);
      break;
    case 'done':
      bar.stop();
      break;
  }
}

/**
 * The job as `--dry-run` shows it: `training.epochs` is left out when `training.steps` is set (the
 * builder fills in its default, but steps decide).
 */
export function resolvedForDisplay(spec: JobSpec): JobSpec {
  const training = spec.training as { steps?: number; epochs?: number };
  if (training.steps === undefined) return spec;
  const { epochs: _unused, ...rest } = training;
  return { ...spec, training: rest } as unknown as JobSpec;
}

function summarize(result: TrainingResult, file: string, out: Output): void {
  const s = result.summary;
  const loss = Number.isFinite(s.finalLoss) ? `, final loss ${s.finalLoss.toFixed(4)}` : '';
  out.print(`${s.status}: ${s.steps}/${s.totalSteps} steps in ${s.elapsedS < 60 ? `${s.elapsedS.toFixed(1)} s` : formatDuration(s.elapsedS)}${loss}`);
  const comparison = compare(s.baselineMetrics, s.metrics);
  if (comparison) out.print(`\n${comparison}\n`);
  else if (Object.keys(s.metrics).length > 0) out.print(`metrics: ${formatMetrics(s.metrics)}`);
  const selection = s.selection;
  if (selection && selection.beatBaseline === false) out.print(`warning: ${selection.message}`);
  else if (selection) out.print(`selection: ${selection.message}`);
  if (result.best?.checkpoint) out.print(`best:       ${shortPath(result.best.checkpoint)} (step ${result.best.step}; load this one)`);
  out.print(`checkpoint: ${shortPath(result.checkpoint)}${result.best?.checkpoint ? ' (last step; resume from this one)' : ''}`);
  out.print(`report:     ${result.report ? shortPath(result.report) : '(not written: see the warning above)'}`);
  if (s.status === 'cancelled') out.print(`resume with: softprompt train ${file} --resume ${result.checkpoint}`);
}

function formatValue(name: string, x: number): string {
  return name === 'accuracy' ? `${(x * 100).toFixed(1)}%` : x.toFixed(4);
}

/** `metric   untuned prompt   tuned prompt` rows for the metrics both evaluations have; undefined without a baseline. */
export function compare(baseline: Metrics, tuned: Metrics): string | undefined {
  const names = Object.keys(tuned).filter((k) => k in baseline);
  if (names.length === 0) return undefined;
  const cell = (name: string, x: number | undefined) =>
    x === undefined || !Number.isFinite(x) ? '—' : formatValue(name, x);
  const rows = [['held-out', 'untuned prompt', 'tuned prompt'], ...names.map((n) => [n, cell(n, baseline[n]), cell(n, tuned[n])])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('   ')).join('\n');
}

/** A path relative to the working folder when it lies inside it. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}
