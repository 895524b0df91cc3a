/** `softprompt generate`: continue texts with a trained prompt (or the bare model); JSONL in, JSONL out. */
import { z } from 'zod';
import type { GenerateInput } from '../../inference/generate.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { IO_OPTIONS, bareString, chunks, openSink, prefetch, rowId, textBytes } from '../jsonl.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';
import { PROMPT_NAME, pathArg, withPrompt } from '../prompt-arg.js';
import { textRows } from './rows.js';

type Row = { input: string; id?: string | number | undefined };
/** A row: `{ input, id? }`, or a bare string. */
const rowSchema = bareString('input', z.looseObject({ input: z.string(), id: rowId })) as z.ZodType<Row>;

export const generate: Command = {
  name: 'generate',
  summary: 'generate text with a prompt_tuning, prefix_tuning or p_tuning checkpoint or the bare model (JSONL in, JSONL out)',
  usage: 'generate [<rows.jsonl> | -] [options]',
  description: `Reads JSON lines from the file (or stdin, or '-'), or the --text values:
  in:  {"input": "Review: a great film. Sentiment:", "id"?: 7}   (or a bare JSON string)
  out: {"id"?: 7, "input": "...", "output": " positive"}        one line per input, in input order

--prompt loads a checkpoint (the model it records, unless --model is given); without it the bare
--model continues the text. Decoding is greedy unless --do-sample. Output is JSON lines unless stdout
is a terminal; there the text of a single input streams as it is generated, and each output is printed
otherwise.`,
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', arg: 'checkpoint', help: 'a prompt_tuning, prefix_tuning or p_tuning checkpoint. Default: none (the bare model)' },
    text: { type: 'string', short: 't', multiple: true, arg: 'text', help: 'continue this text (repeatable) instead of reading rows' },
    'max-new-tokens': { type: 'string', arg: 'n', help: 'most tokens generated per input, 1..4096. Default 64' },
    'do-sample': { type: 'boolean', help: 'sample instead of greedy decoding. Default off' },
    temperature: { type: 'string', arg: 't', help: 'sampling temperature (> 0) with --do-sample. Default 1.0' },
    'top-p': { type: 'string', arg: 'p', help: 'nucleus sampling mass in (0, 1] with --do-sample. Default 1.0' },
    seed: { type: 'string', arg: 'n', help: 'seeds each row\'s sampler. Default 0' },
    stop: { type: 'string', multiple: true, arg: 'text', help: 'end an output before this string (repeatable)' },
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
  const stop = args.list('stop');
  const options: Omit<GenerateInput, 'inputs'> = {
    ...(model ? { model } : {}),
    ...(prompt ? { prompt: PROMPT_NAME } : {}),
    ...(args.int('max-new-tokens') !== undefined ? { maxNewTokens: args.int('max-new-tokens')! } : {}),
    ...(args.bool('do-sample') ? { doSample: true } : {}),
    ...(args.number('temperature') !== undefined ? { temperature: args.number('temperature')! } : {}),
    ...(args.number('top-p') !== undefined ? { topP: args.number('top-p')! } : {}),
    ...(args.int('seed') !== undefined ? { seed: args.int('seed')! } : {}),
    ...(stop.length ? { stop } : {}),
    ...(args.int('batch-size') !== undefined ? { batchSize: args.int('batch-size')! } : {}),
  };
  const rows = textRows<Row>(args, rowSchema, (input) => ({ input }));
  const sink = openSink(args.string('out'), out.stdout);
  const human = out.terminal && !sink.toFile;
  const single = args.list('text').length === 1;
  const batches = await prefetch(chunks(rows, { rows: args.int('chunk-size') ?? 256, sizeOf: (r) => textBytes(r.input) }));
  const sp = await ctx.client();
  let count = 0;
  await withPrompt(sp, prompt, model, ctx.signal, async () => {
    for await (const chunk of batches) {
      const stream = sp.generate({ ...options, inputs: chunk.map((r) => r.row.input) }, { signal: ctx.signal });
      for await (const delta of stream) if (human && single) out.stdout.write(delta.text);
      const { outputs } = await stream.result();
      for (const [i, output] of outputs.entries()) {
        const { input, id } = chunk[i]!.row;
        if (human && single) out.print('');
        else if (human) out.print(`${count > 0 ? '\n' : ''}[${id ?? count}] ${input}\n${output}`);
        else await sink.write({ ...(id !== undefined ? { id } : {}), input, output });
        count += 1;
      }
    }
  });
  await sink.close();
  if (sink.toFile) out.note(`wrote ${count} outputs to ${args.string('out')}`);
  return EXIT.ok;
}
