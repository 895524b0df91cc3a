/** `softprompt rerank`: order each query's passages by query likelihood (UPR or a passage_tuning prompt). */
import { z } from 'zod';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { IO_OPTIONS, chunks, openInput, openSink, prefetch, readRows, rowId, textBytes } from '../jsonl.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';
import { pathArg } from '../prompt-arg.js';

type Row = { query: string; passages: string[]; id?: string | number | undefined };
const rowSchema = z.looseObject({ query: z.string(), passages: z.array(z.string()).min(1, 'expected at least one passage'), id: rowId }) as z.ZodType<Row>;

export const rerank: Command = {
  name: 'rerank',
  summary: 'rerank passages for queries by query likelihood: UPR, or a passage_tuning checkpoint (JSONL in, JSONL out)',
  usage: 'rerank [<rows.jsonl> | -] (--prompt <checkpoint> | --model <spec>) [options]',
  description: `Reads JSON lines from the file (or stdin, or '-'):
  in:  {"query": "who wrote it?", "passages": ["...", "..."], "id"?: "q1"}
  out: {"id"?: "q1", "query": "...", "reranker": "upr" | "passage_tuning",
        "passages": [{"index": 1, "passage": "...", "logLikelihood": -12.3, "meanLogLikelihood": -2.1}, ...]}
       best first (ties keep input order), cut to --top-k; index points into the input's passages.
Output is JSON lines unless stdout is a terminal; there each query's ranking is shown.

Each passage is scored by the log-likelihood of the query after it: UPR's hard instruction with the
frozen --model (Sachan et al., 2022), or a trained passage_tuning prompt (--prompt) in its place, on
the model its checkpoint records unless --model is given.`,
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', arg: 'checkpoint', help: 'a passage_tuning checkpoint. Default: none (UPR with --model)' },
    'top-k': { type: 'string', arg: 'k', help: 'keep the best k passages per query. Default: all' },
    'batch-size': { type: 'string', arg: 'n', help: '(query, passage) pairs per forward pass (speed/memory only). Default 16' },
    ...IO_OPTIONS,
  },
  positionals: [0, 1],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const model = modelFromArgs(args);
  const prompt = pathArg(args, 'prompt');
  if (model === undefined && prompt === undefined) throw new UsageError('rerank: give --prompt (a passage_tuning checkpoint) or --model (UPR with that causal LM)');
  const topK = args.int('top-k');
  const batchSize = args.int('batch-size');
  const sink = openSink(args.string('out'), out.stdout);
  const human = out.terminal && !sink.toFile;
  const rows = readRows(openInput(args.positionals[0]), rowSchema);
  const batches = await prefetch(chunks(rows, { rows: args.int('chunk-size') ?? 256, sizeOf: (r) => textBytes(r.query, ...r.passages) }));
  const sp = await ctx.client();
  let count = 0;
  for await (const chunk of batches) {
    const results = await sp.rerank(
      {
        ...(model ? { model } : {}),
        ...(prompt ? { prompt } : {}),
        ...(batchSize !== undefined ? { batchSize } : {}),
        ...(topK !== undefined ? { topK } : {}),
        queries: chunk.map(({ row }) => ({ query: row.query, passages: row.passages })),
      },
      { signal: ctx.signal },
    );
    for (const [i, result] of results.entries()) {
      const { query, id } = chunk[i]!.row;
      if (human) {
        out.print(`${count > 0 ? '\n' : ''}[${id ?? count}] ${query}`);
        for (const [rank, p] of result.passages.entries()) out.print(`  ${rank + 1}. (${p.logLikelihood.toFixed(3)}) #${p.index} ${p.passage}`);
      } else {
        await sink.write({ ...(id !== undefined ? { id } : {}), query, reranker: result.reranker, passages: result.passages });
      }
      count += 1;
    }
  }
  await sink.close();
  if (sink.toFile) out.note(`wrote ${count} rankings to ${args.string('out')}`);
  return EXIT.ok;
}
