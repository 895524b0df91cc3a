/** `softprompt embed`: texts in (JSONL or --text), embeddings out (JSONL). */
import { z } from 'zod';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { preview } from '../format.js';
import { IO_OPTIONS, bareString, chunks, openSink, prefetch, rowId, textBytes } from '../jsonl.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';
import { pathArg } from '../prompt-arg.js';
import { POOLINGS, type Pooling } from '../../inference/embed.js';
import { textRows } from './rows.js';

type Row = { text: string; id?: string | number | undefined };
/** A row: `{ text, id? }`, or a bare string. */
const rowSchema = bareString('text', z.looseObject({ text: z.string(), id: rowId })) as z.ZodType<Row>;

export const embed: Command = {
  name: 'embed',
  summary: 'embed texts with a suffix_tuning checkpoint or the base model (JSONL in, JSONL out)',
  usage: 'embed [<rows.jsonl> | -] [options]',
  description: `Reads JSON lines from the file (or stdin, or '-'), or the --text values:
  in:  {"text": "a cat", "id"?: "q1"}      (or a bare JSON string: "a cat")
  out: {"id"?: "q1", "embedding": [0.0123, ...]}   one line per input, in input order

Without --prompt the frozen base model embeds by mean pooling (give --model). With --prompt (a
suffix_tuning checkpoint) the checkpoint's model is used unless --model is given.
Output is JSON lines unless stdout is a terminal; there each row's dimension and first values are shown.`,
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', arg: 'checkpoint', help: 'a suffix_tuning checkpoint. Default: none (the base model, mean pooling)' },
    text: { type: 'string', short: 't', multiple: true, arg: 'text', help: 'embed this text (repeatable) instead of reading rows' },
    pooling: { type: 'string', arg: 'how', help: `${POOLINGS.join(', ')}. Default: the prompt's trained pooling; mean without a prompt` },
    normalize: { type: 'boolean', help: "L2-normalise rows. Default: the prompt's setting; on without a prompt" },
    'no-normalize': { type: 'boolean', help: 'do not L2-normalise rows' },
    'batch-size': { type: 'string', arg: 'n', help: 'texts per forward pass (speed/memory only). Default 32' },
    ...IO_OPTIONS,
  },
  positionals: [0, 1],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const pooling = args.string('pooling');
  if (pooling !== undefined && !(POOLINGS as readonly string[]).includes(pooling)) {
    throw new UsageError(`--pooling: expected one of ${POOLINGS.join(', ')}, got '${pooling}'`);
  }
  const model = modelFromArgs(args);
  const prompt = pathArg(args, 'prompt');
  if (model === undefined && prompt === undefined) throw new UsageError('embed: give --model (the base model embeds) or --prompt (a suffix_tuning checkpoint)');
  const options = {
    ...(model ? { model } : {}),
    ...(prompt ? { prompt } : {}),
    ...(pooling ? { pooling: pooling as Pooling } : {}),
    ...(args.flag('normalize') !== undefined ? { normalize: args.flag('normalize')! } : {}),
    ...(args.int('batch-size') !== undefined ? { batchSize: args.int('batch-size')! } : {}),
  };
  const rows = textRows<Row>(args, rowSchema, (text) => ({ text }));
  const sink = openSink(args.string('out'), out.stdout);
  const human = out.terminal && !sink.toFile;
  const batches = await prefetch(chunks(rows, { rows: args.int('chunk-size') ?? 256, sizeOf: (r) => textBytes(r.text) }));
  const sp = await ctx.client();
  let count = 0;
  for await (const chunk of batches) {
    const e = await sp.embed({ ...options, texts: chunk.map((r) => r.row.text) }, { signal: ctx.signal });
    for (let i = 0; i < chunk.length; i++) {
      const { id } = chunk[i]!.row;
      if (human) out.print(`${id ?? count}\tdim ${e.dim}\t${preview(e.row(i))}`);
      else await sink.write({ ...(id !== undefined ? { id } : {}), embedding: Array.from(e.row(i)) });
      count += 1;
    }
  }
  await sink.close();
  if (sink.toFile) out.note(`wrote ${count} embeddings to ${args.string('out')}`);
  return EXIT.ok;
}
