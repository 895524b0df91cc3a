/** `softprompt sweep <sweep-file>`: train several jobs on one model together, in shared passes (`sp.trainMany`). */
import type { TrainingResult } from '../../jobs/events.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { formatMetrics } from '../format.js';
import { loadDocument } from '../job-file.js';
import { buildSweep } from '../sweep-file.js';

export const sweep: Command = {
  name: 'sweep',
  summary: 'train several jobs on one model together, in shared forward/backward passes, from a sweep file',
  usage: 'sweep <sweep.yaml|sweep.json> [options]',
  description: `A sweep file holds a base job (a job file's fields, see 'softprompt train --help') and the jobs,
each a name and what it changes in the base (maps merge key by key):

  base:
    method: prompt_tuning
    model: { nameOrPath: gpt2 }
    task: { type: classification, labels: [positive, negative] }
    data: { train: { path: sst2.jsonl }, evalFraction: 0.1 }
    training: { steps: 500 }
  jobs:
    - { name: lr-0.01, training: { lr: 0.01 } }
    - { name: lr-0.1, training: { lr: 0.1 } }
    - { name: n-50, numVirtualTokens: 50 }

The jobs train together on one worker: every forward and backward pass of the frozen model serves all of
them, while each keeps its own optimizer, data order, evaluations, checkpoints and report in
<runDir>/<name> (runDir: the base's, else runs/<file>-<time>-<random> beside the file). Each job's results
equal those it gets alone. Jobs must fuse: one model and dtype, prompt/prefix/P-tuning on generation or
classification; otherwise the sweep stops before training and says which job (jobs[i]: the i-th
of the file, from 0) and why.

Progress: a line per job every --progress-every steps on stderr; at the end a table, one row per job.
Ctrl-C cancels every job cleanly (each writes a resumable checkpoint; exit 130).
--json: each job's events as JSON lines with "job": <name>, then {"type":"result","job",...} per job.`,
  options: {
    'dry-run': { type: 'boolean', help: 'validate the sweep file and print the jobs it makes; start nothing' },
    'progress-every': { type: 'string', arg: 'n', help: 'steps between progress lines of a job. Default: a tenth of its run' },
  },
  positionals: [1, 1],
  ownWorker: true,
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const file = args.positionals[0]!;
  const jobs = buildSweep(await loadDocument(file), file);
  if (args.bool('dry-run')) {
    if (out.json) for (const { name, spec } of jobs) await out.data({ job: name, ...spec });
    else out.print(`${file}: valid sweep of ${jobs.length} jobs\n${jobs.map(({ name, spec }) => `  ${name}: ${spec.method} → ${spec.runDir}`).join('\n')}`);
    return EXIT.ok;
  }
  out.note(args.string('connect') ? `connecting to ${args.string('connect')}…` : 'starting the worker (Python imports torch: a few seconds)…');
  const sp = await ctx.client();
  const running = sp.trainMany(jobs.map((j) => j.spec), { signal: ctx.signal });
  const every = args.int('progress-every');
  const results = await Promise.allSettled(
    running.map(async (job, i) => {
      const { name } = jobs[i]!;
      let total = 0;
      for await (const event of job.events()) {
        if (out.json) await out.data({ job: name, ...event });
        else if (event.type === 'started') total = event.totalSteps;
        else if (event.type === 'step' && event.step % (every ?? Math.max(1, Math.floor(total / 10))) === 0) {
          out.note(`${name}: step ${event.step}/${total} loss ${event.loss.toFixed(4)}`);
        }
      }
      const result = await job.result();
      if (out.json) await out.data({ type: 'result', job: name, ...result });
      return result;
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const anyEnded = results.some((r) => r.status === 'fulfilled');
  if (!out.json && anyEnded) out.print(table(jobs.map((j) => j.name), results)); // else the error says it all
  if (failed) throw failed.reason;
  return results.some((r) => r.status === 'fulfilled' && r.value.status === 'cancelled') ? EXIT.cancelled : EXIT.ok;
}

/** One row per job: status, final loss, held-out metrics, the checkpoint to load. */
function table(names: string[], results: PromiseSettledResult<TrainingResult>[]): string {
  const rows = [['job', 'status', 'final loss', 'held-out', 'load']];
  results.forEach((r, i) => {
    if (r.status === 'rejected') return rows.push([names[i]!, 'failed', '—', String((r.reason as Error).message).slice(0, 60), '—']);
    const { summary, best, checkpoint } = r.value;
    const loss = Number.isFinite(summary.finalLoss) ? summary.finalLoss.toFixed(4) : '—';
    rows.push([names[i]!, summary.status, loss, formatMetrics(summary.metrics) || '—', best?.checkpoint ?? checkpoint]);
  });
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}
