/** `softprompt plan <job-file> --gpu 24GiB`: a job's estimated peak memory, whether it fits, what to change. */
import { parseBytes, type MemoryPlan } from '../../jobs/plan.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { buildJob, loadDocument } from '../job-file.js';

export const plan: Command = {
  name: 'plan',
  summary: "estimate a training job's peak GPU memory, say whether it fits --gpu, and what to change if not",
  usage: 'plan <job.json|job.yaml> [--gpu <size>] [options]',
  description: `Reads the same job file as train (nothing is trained and no weights are loaded: the model is
built from its config) and estimates the peak memory of one training step: the frozen weights (by
dtype and quantization), the soft parameters, their gradients and optimizer state, the activations the
frozen layers keep for backward (with gradientCheckpointing: each layer's input), the logits and loss,
for the job's batch size and sequence length. How it is computed and how close it came to measured
peaks: docs/memory.md.

  softprompt plan job.yaml --gpu 24GiB
  softprompt plan job.yaml --gpu 80GB --json

--gpu takes bytes or a size with a unit: GiB/MiB (2^30, 2^20) or GB/MB (10^9, 10^6). Without it the
worker's CUDA device's memory is the budget; on a CPU-only worker there is no verdict (exit 0). The
plan is for a CUDA device (bf16) when --gpu is given or the worker has one; --device cpu plans f32 on
the CPU.

Exit code: 0 when the job fits (or there is no budget), 4 when it does not (the table then lists the
changes that would make it fit), 2 for a job file that does not validate.

--json: {"fits", "peakBytes", "budgetBytes", "breakdown", "settings", "longestSeq", "suggestions"}.`,
  options: {
    gpu: { type: 'string', arg: 'size', help: 'memory budget, e.g. 24GiB, 80GB, 16000000000. Default: the worker\'s GPU' },
    device: { type: 'string', arg: 'cuda|cpu', help: 'plan for this device. Default: cuda with --gpu or a GPU, else cpu' },
    negatives: { type: 'string', arg: 'n', help: 'hard negatives per row (suffix/passage tuning). Default: the inline rows\', else 0 / maxHardNegatives' },
  },
  positionals: [1, 1],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const file = args.positionals[0]!;
  const spec = buildJob(await loadDocument(file), file);
  const device = args.string('device');
  if (device !== undefined && device !== 'cuda' && device !== 'cpu') throw new UsageError(`--device: expected cuda or cpu, got '${device}'`);
  const gpu = args.string('gpu');
  const negatives = args.int('negatives');
  const options = {
    ...(gpu !== undefined ? { gpu: parseBytes(gpu, '--gpu') } : {}),
    ...(device !== undefined ? { device: device as 'cuda' | 'cpu' } : {}),
    ...(negatives !== undefined ? { negatives } : {}),
    signal: ctx.signal,
  };
  const result = await ctx.client().then((sp) => sp.plan(spec, options));
  if (out.json) await out.data(result);
  else out.print(formatPlan(result, file));
  return result.fits === false ? EXIT.doesNotFit : EXIT.ok;
}

/** Bytes as GiB with one decimal (MiB below 1 GiB). */
export function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

const PART_NAMES: Readonly<Record<string, string>> = {
  weights: 'frozen weights',
  softParams: 'soft parameters',
  gradients: 'their gradients',
  optimizer: 'optimizer state',
  activations: 'activations',
  logits: 'logits and loss',
  other: 'embeddings, mask, backward',
  cudaReserve: 'CUDA context and slack',
};

/** The human table: settings, parts, total vs budget, verdict, suggestions. */
export function formatPlan(p: MemoryPlan, file: string): string {
  const s = p.settings;
  const quant = s.quantization ? `${s.quantization} weights, ` : `${s.weightsDtype} weights, `;
  const lines = [
    `${file}: ${s.method}, batch ${s.batchSize} × ${s.seq} tokens (${s.seqField}), ${s.virtualTokens} virtual tokens, ` +
      `${quant}${s.computeDtype} activations, gradient checkpointing ${s.gradientCheckpointing ? 'on' : 'off'}, on ${p.device}`,
    '',
  ];
  const rows = Object.entries(p.breakdown).map(([k, v]) => [PART_NAMES[k] ?? k, formatBytes(v)] as const);
  rows.push(['estimated peak', formatBytes(p.peakBytes)]);
  if (p.budgetBytes !== undefined) rows.push([p.budgetSource === 'device' ? 'device memory' : 'budget (--gpu)', formatBytes(p.budgetBytes)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const valueWidth = Math.max(...rows.map(([, v]) => v.length));
  rows.forEach(([k, v], i) => {
    if (i === rows.length - (p.budgetBytes !== undefined ? 2 : 1)) lines.push('-'.repeat(width + valueWidth + 3));
    lines.push(`${k.padEnd(width)}   ${v.padStart(valueWidth)}`);
  });
  lines.push('');
  if (p.fits === undefined) lines.push('no budget (a CPU-only worker and no --gpu): estimate only');
  else if (p.fits) lines.push(`fits (longest ${s.seqField} that fits: ${p.longestSeq})`);
  else {
    lines.push(`does not fit: ${formatBytes(p.peakBytes - p.budgetBytes!)} over; longest ${s.seqField} that fits as it is: ${p.longestSeq}`);
    for (const x of p.suggestions) lines.push(`  ${x.fits ? 'fits:   ' : 'not yet:'} ${x.text} (${formatBytes(x.peakBytes)})`);
  }
  return lines.join('\n');
}
