/** `softprompt classify`: pick the likeliest label for each input with a prompt_tuning, prefix_tuning or p_tuning checkpoint. */
import { z } from 'zod';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { IO_OPTIONS, bareString, chunks, openSink, prefetch, rowId, textBytes } from '../jsonl.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';
import { PROMPT_NAME, jobLabels, pathArg, withPrompt } from '../prompt-arg.js';
import { textRows } from './rows.js';

type Row = { input: string; id?: string | number | undefined };
/** A row: `{ input, id? }`, or a bare string. */
const rowSchema = bareString('input', z.looseObject({ input: z.string(), id: rowId })) as z.ZodType<Row>;

export const classify: Command = {
  name: 'classify',
  summary: 'classify texts with a prompt_tuning, prefix_tuning or p_tuning checkpoint: the likeliest label wins (JSONL in, JSONL out)',
  usage: 'classify [<rows.jsonl> | -] --prompt <checkpoint> [--labels a,b,c] [options]',
  description: `Reads JSON lines from the file (or stdin, or '-'), or the --text values:
  in:  {"input": "It crashes on start.", "id"?: 7}      (or a bare JSON string)
  out: {"id"?: 7, "input": "...", "label": "bug", "scores": {"bug": -1.2, "feature": -5.3, ...}}

Each label is scored by its summed log-likelihood as the continuation of the input (with the trained
prompt in front), and the best one wins. The labels default to those of the classification job that
wrote the checkpoint (its run folder's job.json); --labels overrides them. The checkpoint's model is
used unless --model is given. Output is JSON lines unless stdout is a terminal.`,
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', arg: 'checkpoint', help: 'a prompt_tuning, prefix_tuning or p_tuning checkpoint. Default: none (the bare --model)' },
    labels: { type: 'string', multiple: true, arg: 'labels', help: "candidate labels (comma-separated or repeated). Default: the checkpoint's job's labels" },
    text: { type: 'string', short: 't', multiple: true, arg: 'text', help: 'classify this text (repeatable) instead of reading rows' },
    'batch-size': { type: 'string', arg: 'n', help: 'rows per forward pass (speed/memory only). Default 16' },
    ...IO_OPTIONS,
  },
  positionals: [0, 1],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const model = modelFromArgs(args);
  const prompt = pathArg(args, 'prompt');
  if (model === undefined && prompt === undefined) throw new UsageError('classify: give --prompt (a trained checkpoint) or --model (the bare model)');
  const given = args.list('labels').flatMap((l) => l.split(',')).map((l) => l.trim()).filter(Boolean);
  const labels = given.length > 0 ? given : prompt ? jobLabels(prompt) : undefined;
  if (labels === undefined) throw new UsageError('classify: give --labels (no classification job.json was found beside the checkpoint)');
  const batchSize = args.int('batch-size');
  const rows = textRows<Row>(args, rowSchema, (input) => ({ input }));
  const sink = openSink(args.string('out'), out.stdout);
  const human = out.terminal && !sink.toFile;
  const batches = await prefetch(chunks(rows, { rows: args.int('chunk-size') ?? 256, sizeOf: (r) => textBytes(r.input) }));
  const sp = await ctx.client();
  let count = 0;
  await withPrompt(sp, prompt, model, ctx.signal, async () => {
    for await (const chunk of batches) {
      const { predictions, scores } = await sp.classify(
        {
          ...(model ? { model } : {}),
          ...(prompt ? { prompt: PROMPT_NAME } : {}),
          ...(batchSize !== undefined ? { batchSize } : {}),
          labels,
          inputs: chunk.map((r) => r.row.input),
        },
        { signal: ctx.signal },
      );
      for (const [i, label] of predictions.entries()) {
        const { input, id } = chunk[i]!.row;
        if (human) out.print(`${label}\t${input}`);
        else await sink.write({ ...(id !== undefined ? { id } : {}), input, label, scores: Object.fromEntries(labels.map((l, j) => [l, scores[i]![j]])) });
        count += 1;
      }
    }
  });
  await sink.close();
  if (sink.toFile) out.note(`wrote ${count} predictions to ${args.string('out')}`);
  return EXIT.ok;
}
