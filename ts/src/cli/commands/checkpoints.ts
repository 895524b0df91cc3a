/** `softprompt inspect | export --peft | import --peft`: checkpoint metadata and PEFT adapters. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CheckpointInfo } from '../../jobs/checkpoints.js';
import { inspectCheckpoint } from '../../jobs/checkpoint-file.js';
import type { ModelSpec } from '../../spec/model-spec.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { formatMetrics, table } from '../format.js';
import { MODEL_OPTIONS, modelFromArgs, parseModel } from '../model-arg.js';

export const inspect: Command = {
  name: 'inspect',
  summary: "show a checkpoint's method, base model, step, metrics and tensors (the content hash is verified)",
  usage: 'inspect <checkpoint.pb> [--model <spec>]',
  description: `Reads the checkpoint file here, in TypeScript (no worker starts): its metadata, verified as the
worker verifies it; no tensor data is kept. With --model, also asks a worker whether the checkpoint fits
that model (same architecture fingerprint); that loads the model.
--json: the SDK's CheckpointInfo ({"path", "method", "methodConfig", "baseModel", "step", ...}).`,
  options: { ...MODEL_OPTIONS },
  positionals: [1, 1],
  async run(ctx: CommandContext): Promise<ExitCode> {
    const { args, out } = ctx;
    const model = modelFromArgs(args);
    const path = resolve(args.positionals[0]!);
    const info = model ? await ctx.client().then((sp) => sp.checkpoints.inspect(path, { model, signal: ctx.signal })) : await inspectCheckpoint(path);
    if (out.json) await out.data(info);
    else out.print(describe(info));
    return EXIT.ok;
  },
};

function describe(info: CheckpointInfo): string {
  const m = info.baseModel;
  const config = Object.entries(info.methodConfig)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  const rows: [string, string][] = [
    ['method', `${info.method}${config ? ` (${config})` : ''}`],
    ['base model', `${m.nameOrPath} (${m.modelType}, hidden ${m.hiddenSize}, ${m.numLayers} layers; fingerprint ${m.fingerprint.slice(0, 12)})`],
    ['step', String(info.step)],
    ['metrics', formatMetrics(info.metrics)],
    ['resumable', info.resumable ? 'yes (train --resume continues it)' : 'no (inference only)'],
    ...Object.entries(info.tensors).map(([name, t]): [string, string] => ['tensor', `${name}: ${t.dtype} [${t.shape.join(', ')}]`]),
    ['created', new Date(info.createdUnixMs).toISOString()],
    ['versions', Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['sha256', info.contentSha256],
    ...(info.compatible === undefined ? [] : [['fits model', info.compatible ? 'yes' : 'no (another architecture)'] as [string, string]]),
  ];
  return `${info.path}\n${table(rows)}`;
}

const PEFT = { peft: { type: 'boolean', help: "PEFT's adapter format (adapter_config.json + adapter_model.safetensors); required" } } as const;

function requirePeft(ctx: CommandContext, command: string): void {
  if (!ctx.args.bool('peft')) throw new UsageError(`${command}: give the format: --peft (the only one today)`);
}

/** `<input> <output>` or `<input> --out <output>`: export and import name their output the same way. */
function output(ctx: CommandContext, command: string, what: string): string {
  const [, positional] = ctx.args.positionals;
  const flag = ctx.args.string('out');
  if (positional !== undefined && flag !== undefined) throw new UsageError(`${command}: give the output once (--out or a second argument), not both`);
  const out = flag ?? positional;
  if (out === undefined) throw new UsageError(`${command}: --out is required (${what})`);
  return resolve(out);
}

export const exportPeft: Command = {
  name: 'export',
  summary: 'write a checkpoint as a PEFT adapter directory (PeftModel.from_pretrained loads it)',
  usage: 'export --peft <checkpoint.pb> --out <adapter_dir> [--model <spec>]',
  description: `Prompt tuning exports on any model, prefix tuning on decoder-only models; what PEFT cannot
represent fails with the reason. The adapter is built on the checkpoint's model unless --model is given.
The output may also be given as a second argument (export --peft ckpt.pb out/), as for import.
--json: {"outDir", "method", "files"}.`,
  options: { ...PEFT, ...MODEL_OPTIONS, out: { type: 'string', short: 'o', arg: 'dir', help: 'the adapter folder to write; required' } },
  positionals: [1, 2],
  async run(ctx: CommandContext): Promise<ExitCode> {
    requirePeft(ctx, 'export');
    const checkpoint = resolve(ctx.args.positionals[0]!);
    const outDir = output(ctx, 'export', 'the adapter folder to write');
    const model = modelFromArgs(ctx.args);
    const sp = await ctx.client();
    const result = await sp.checkpoints.exportPeft(checkpoint, outDir, { ...(model ? { model } : {}), signal: ctx.signal });
    if (ctx.out.json) await ctx.out.data(result);
    else ctx.out.print(`wrote ${result.method} adapter to ${result.outDir}: ${result.files.join(', ')}`);
    return EXIT.ok;
  },
};

export const importPeft: Command = {
  name: 'import',
  summary: 'turn a PEFT adapter directory into a softprompt checkpoint',
  usage: 'import --peft <adapter_dir> --out <checkpoint.pb> [--model <spec>]',
  description: `The checkpoint is usable for inference (generate --prompt) and as an init (initCheckpoint).
The base model is the adapter's own (base_model_name_or_path in its adapter_config.json) unless --model
is given. The output may also be given as a second argument, as for export.
--json: {"path", "method", "methodConfig"}.`,
  options: {
    ...PEFT,
    ...MODEL_OPTIONS,
    out: { type: 'string', short: 'o', arg: 'file', help: 'the checkpoint file to write (.pb); required' },
  },
  positionals: [1, 2],
  async run(ctx: CommandContext): Promise<ExitCode> {
    requirePeft(ctx, 'import');
    const adapterDir = resolve(ctx.args.positionals[0]!);
    const outFile = output(ctx, 'import', 'the checkpoint file to write');
    const model = modelFromArgs(ctx.args) ?? adapterModel(adapterDir);
    const sp = await ctx.client();
    const result = await sp.checkpoints.importPeft({ adapterDir, model, out: outFile }, { signal: ctx.signal });
    if (ctx.out.json) await ctx.out.data(result);
    else ctx.out.print(`wrote ${result.method} checkpoint ${result.path}`);
    return EXIT.ok;
  },
};

/** The base model an adapter names (`adapter_config.json` `base_model_name_or_path`), as `--model` would read it. */
export function adapterModel(adapterDir: string): ModelSpec {
  const file = join(adapterDir, 'adapter_config.json');
  let name: unknown;
  try {
    name = (JSON.parse(readFileSync(file, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`;
    throw new UsageError(`import: ${file} ${why}; is ${adapterDir} a PEFT adapter folder? (or give --model)`, [], { cause: error });
  }
  if (typeof name !== 'string' || name === '') throw new UsageError(`import: ${file} names no base model (base_model_name_or_path); give --model`);
  return parseModel(name);
}
