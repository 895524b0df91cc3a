/** `softprompt status`: what a worker holds and does (loaded models, training jobs, queues). */
import type { WorkerStatus } from '../../core/status.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { table } from '../format.js';
import { formatBytes } from './plan.js';

export const status: Command = {
  name: 'status',
  summary: 'show what a worker holds and does: loaded models, running and queued training jobs, queues',
  usage: 'status [--connect <endpoint>]',
  description: `Asks the worker (the warm one, or a served one with --connect) what it holds and does. The worker
answers at once, even while jobs train: its base models with their memory, its training jobs (running, then
queued in the order they start) with their step and loss, and the requests waiting.

  softprompt status
  softprompt status --connect tcp://gpu-box:5555 --keys ~/.softprompt/keys

A worker trains up to --max-training-jobs jobs at once (default 2), taking turns on the device between their
micro-batches, and serves inference between those turns (proto/WIRE.md, "Scheduling").

--json: {"models", "jobs", "queues", "maxTrainingJobs", "device", "compute", "batching"}.`,
  options: {},
  positionals: [0, 0],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const result = await ctx.client().then((sp) => sp.status({ signal: ctx.signal }));
  if (ctx.out.json) await ctx.out.data(result);
  else ctx.out.print(formatStatus(result));
  return EXIT.ok;
}

export function formatStatus(s: WorkerStatus): string {
  const models = s.models.length
    ? table(s.models.map((m) => [modelName(m.model), `${m.device} ${m.dtype}, ${formatBytes(m.bytes)}`] as const))
    : '  none loaded';
  const jobs = s.jobs.length
    ? table(s.jobs.map((j) => [j.jobId ?? `request ${j.requestId}`, describeJob(j)] as const))
    : '  none';
  const running = s.jobs.filter((j) => j.state === 'running').length;
  return [
    'models',
    models,
    `training jobs (${running} running of at most ${s.maxTrainingJobs}, ${s.queues.training} queued)`,
    jobs,
    `inference requests waiting: ${s.queues.inference}`,
    `device: ${s.device.holder ?? 'idle'}`,
    ...(s.batching ? [describeBatching(s.batching)] : []),
  ].join('\n');
}

function describeBatching(b: NonNullable<WorkerStatus['batching']>): string {
  const perOp = Object.entries(b.ops).map(([op, c]) => `${op} ${c.runs}/${c.requests}`);
  return `batching: ${b.runs} merged runs answered ${b.requests} requests${perOp.length ? ` (${perOp.join(', ')})` : ''}, ` +
    `at most ${b.maxRows} rows, waiting ${b.waitMs} ms`;
}

function describeJob(j: WorkerStatus['jobs'][number]): string {
  const progress = j.step !== undefined && j.totalSteps !== undefined ? `step ${j.step}/${j.totalSteps}` : 'not started';
  const loss = j.loss !== undefined ? `, loss ${j.loss.toFixed(4)}` : '';
  const where = j.runDir ? `, ${j.runDir}` : '';
  return `${j.state}${j.method ? ` ${j.method}` : ''}: ${j.state === 'queued' ? 'waiting' : progress}${loss}${where}`;
}

function modelName(model: Readonly<Record<string, unknown>>): string {
  for (const key of ['nameOrPath', 'tiny', 'embedded']) if (typeof model[key] === 'string') return `${key === 'tiny' ? 'tiny ' : ''}${model[key] as string}`;
  return JSON.stringify(model);
}
