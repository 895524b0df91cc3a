/** `softprompt inspect | export --peft | import --peft`: checkpoint metadata and PEFT adapters. */
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { formatMetrics, table } from '../format.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';

export const inspect: Command = {
  name: 'inspect',
  summary: "show a checkpoint's method, base model, step, metrics and tensors (the content hash is verified)",
  usage: 'inspect <checkpoint.pb> [--model <spec>]',
  description: `Reads the checkpoint's metadata; no tensor data is loaded. With --model, also says whether the
checkpoint fits that model (same architecture fingerprint); that loads the model.
--json: the SDK's CheckpointInfo ({"path", "method", "methodConfig", "baseModel", "step", ...}).`,
  options: { ...MODEL_OPTIONS },
  positionals: [1, 1],
  async run(ctx: CommandContext): Promise<ExitCode> {
    const { args, out } = ctx;
    const model = modelFromArgs(args);
    const sp = await ctx.client();
    const info = await sp.checkpoints.inspect(args.positionals[0]!, { ...(model ? { model } : {}), signal: ctx.signal });
    if (out.json) {
      await out.data(info);
      return EXIT.ok;
    }
    const m = info.baseModel;
    const config = Object.entries(info.methodConfig)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
    const rows: [string, string][] = [
      ['method', `${info.method}${config ? ` (${config})` : ''}`],
      ['base model', `${m.nameOrPath} (${m.modelType}, hidden ${m.hiddenSize}, ${m.numLayers} layers; fingerprint ${m.fingerprint.slice(0, 12)})`],
      ['step', String(info.step)],
      ['metrics', formatMetrics(info.metrics)],
      ['resumable', info.resumable ? 'yes (train --resume continues it)' : 'no (inference only)'],
      ...Object.entries(info.tensors).map(([name, t]): [string, string] => [`tensor`, `${name}: ${t.dtype} [${t.shape.join(', ')}]`]),
      ['created', new Date(info.createdUnixMs).toISOString()],
      ['versions', Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['sha256', info.contentSha256],
      ...(info.compatible === undefined ? [] : [['fits model', info.compatible ? 'yes' : 'no (another architecture)'] as [string, string]]),
    ];
    out.print(`${info.path}\n${table(rows)}`);
    return EXIT.ok;
  },
};

const PEFT = { peft: { type: 'boolean', help: "PEFT's adapter format (adapter_config.json + adapter_model.safetensors); required" } } as const;

function requirePeft(ctx: CommandContext, command: string): void {
  if (!ctx.args.bool('peft')) throw new UsageError(`${command}: give the format: --peft (the only one today)`);
}

export const exportPeft: Command = {
  name: 'export',
  summary: 'write a checkpoint as a PEFT adapter directory (PeftModel.from_pretrained loads it)',
  usage: 'export --peft <checkpoint.pb> <out_dir> [--model <spec>]',
  description: `Prompt tuning exports on any model, prefix tuning on decoder-only models; what PEFT cannot
represent fails with the reason. The adapter is built on the checkpoint's model unless --model is given.
--json: {"outDir", "method", "files"}.`,
  options: { ...PEFT, ...MODEL_OPTIONS },
  positionals: [2, 2],
  async run(ctx: CommandContext): Promise<ExitCode> {
    requirePeft(ctx, 'export');
    const [checkpoint, outDir] = ctx.args.positionals as [string, string];
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
  usage: 'import --peft <adapter_dir> --model <spec> --out <checkpoint.pb>',
  description: `The checkpoint is usable for inference (generate --prompt) and as an init
(initCheckpoint). --json: {"path", "method", "methodConfig"}.`,
  options: {
    ...PEFT,
    ...MODEL_OPTIONS,
    out: { type: 'string', short: 'o', arg: 'file', help: 'the checkpoint file to write (.pb); required' },
  },
  positionals: [1, 1],
  async run(ctx: CommandContext): Promise<ExitCode> {
    requirePeft(ctx, 'import');
    const model = modelFromArgs(ctx.args);
    const outFile = ctx.args.string('out');
    if (model === undefined) throw new UsageError('import: --model is required (the base model the adapter was trained on)');
    if (outFile === undefined) throw new UsageError('import: --out is required (the checkpoint file to write)');
    const sp = await ctx.client();
    const result = await sp.checkpoints.importPeft({ adapterDir: ctx.args.positionals[0]!, model, out: outFile }, { signal: ctx.signal });
    if (ctx.out.json) await ctx.out.data(result);
    else ctx.out.print(`wrote ${result.method} checkpoint ${result.path}`);
    return EXIT.ok;
  },
};
