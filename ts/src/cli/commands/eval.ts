/** `softprompt eval retrieval|reranking`: evaluate an embedder or a reranker in the worker. */
import { z } from 'zod';
import type { RetrievalEvalInput } from '../../inference/evaluate.js';
import { POOLINGS, type Pooling } from '../../inference/embed.js';
import { ValidationError } from '../../core/errors.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { formatMetrics } from '../format.js';
import { loadDocument } from '../job-file.js';
import { openInput, readAll } from '../jsonl.js';
import { MODEL_OPTIONS, modelFromArgs } from '../model-arg.js';
import { pathArg } from '../prompt-arg.js';

const retrievalFile = z.strictObject({
  queries: z.unknown().optional(),
  corpus: z.unknown().optional(),
  qrels: z.unknown().optional(),
  sts: z.unknown().optional(),
  kValues: z.unknown().optional(),
});
const rerankingRow = z.object({ query: z.string(), positive: z.string(), negatives: z.array(z.string()).optional() });

export const evaluate: Command = {
  name: 'eval',
  summary: 'evaluate retrieval (nDCG/Recall/MRR@k, STS) of an embedder, or reranking (Hits@k, MRR, nDCG@10)',
  usage: 'eval retrieval <set.json|set.yaml|-> [options]\n       softprompt eval reranking <rows.jsonl|-> (--prompt <checkpoint> | --model <spec>) [options]',
  description: `retrieval: the file is one JSON or YAML document (BEIR's three parts in one place):
  {"queries": {"q1": "text"}, "corpus": {"d1": "text"}, "qrels": {"q1": {"d1": 1}},
   "kValues"?: [1, 10, 100], "sts"?: {"pairs": [["a", "b"], ...], "scores": [4.5, ...]}}
  The embedder is --prompt (a suffix_tuning checkpoint) or the base --model (mean pooling).

reranking: JSON lines, one query each (the rows passage_tuning trains on):
  {"query": "...", "positive": "the relevant passage", "negatives": ["...", "..."]}
  The reranker is UPR with the frozen --model, or --prompt (a passage_tuning checkpoint, on the model
  it records unless --model is given).

Output: the metrics (--json: {"source"|"reranker", "metrics": {...}, "queries", ...}).`,
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', arg: 'checkpoint', help: 'suffix_tuning (retrieval) or passage_tuning (reranking) checkpoint. Default: none' },
    k: { type: 'string', multiple: true, arg: 'k', help: 'retrieval cut-offs (repeatable or comma-separated), overriding the file\'s kValues. Default 1,10,100' },
    pooling: { type: 'string', arg: 'how', help: `retrieval pooling: ${POOLINGS.join(', ')}. Default: the prompt's; mean without one` },
    'batch-size': { type: 'string', arg: 'n', help: 'rows per forward pass (speed/memory only)' },
  },
  positionals: [2, 2],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const [kind, file] = args.positionals as [string, string];
  const model = modelFromArgs(args);
  const prompt = pathArg(args, 'prompt');
  const batchSize = args.int('batch-size');
  const common = { ...(model ? { model } : {}), ...(prompt ? { prompt } : {}), ...(batchSize !== undefined ? { batchSize } : {}) };
  if (kind === 'retrieval') {
    const parsed = retrievalFile.safeParse(await loadDocument(file));
    if (!parsed.success) throw ValidationError.fromZod(parsed.error, file);
    const pooling = args.string('pooling');
    if (pooling !== undefined && !(POOLINGS as readonly string[]).includes(pooling)) {
      throw new UsageError(`--pooling: expected one of ${POOLINGS.join(', ')}, got '${pooling}'`);
    }
    const k = args.ints('k');
    const input = {
      ...parsed.data,
      ...common,
      ...(pooling ? { pooling: pooling as Pooling } : {}),
      ...(k.length ? { kValues: k } : {}),
    } as RetrievalEvalInput;
    const result = await ctx.client().then((sp) => sp.evaluate.retrieval(input, { signal: ctx.signal }));
    if (out.json) await out.data(result);
    else out.print(`${result.source}: ${result.queries} queries, ${result.corpus} documents, ${result.pairs} STS pairs\n${formatMetrics(result.metrics as Record<string, number>)}`);
    return EXIT.ok;
  }
  if (kind === 'reranking') {
    if (model === undefined && prompt === undefined) throw new UsageError('eval reranking: give --prompt (a passage_tuning checkpoint) or --model (UPR with that causal LM)');
    const rows = await readAll(openInput(file), rerankingRow);
    const result = await ctx.client().then((sp) => sp.evaluate.reranking({ ...common, rows }, { signal: ctx.signal }));
    if (out.json) await out.data(result);
    else out.print(`${result.reranker}: ${result.queries} queries\n${formatMetrics(result.metrics)}`);
    return EXIT.ok;
  }
  throw new UsageError(`eval: expected 'retrieval' or 'reranking', got '${kind}' (see softprompt eval --help)`);
}
