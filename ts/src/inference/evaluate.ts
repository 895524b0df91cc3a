/**
 * `sp.evaluate`: retrieval/STS evaluation of an embedder (op `evaluate_retrieval`,
 * `ops/embedding.py`) and reranking evaluation of a reranker (op `evaluate_reranking`,
 * `ops/rerank.py`), computed in the worker so no embedding or score matrix crosses the wire.
 */
import { z } from 'zod';
import type { Incoming, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { type EvaluateRerankingReply, evaluateRerankingReplyFields, evaluateRerankingReplySchema } from '../gen/schema/evaluate-reranking-reply.js';
import { type EvaluateRerankingRequest, evaluateRerankingRequestFields } from '../gen/schema/evaluate-reranking-request.js';
import { type EvaluateRetrievalReply, evaluateRetrievalReplySchema } from '../gen/schema/evaluate-retrieval-reply.js';
import { type EvaluateRetrievalRequest, evaluateRetrievalRequestFields, stsSetFields } from '../gen/schema/evaluate-retrieval-request.js';
import type { Same } from '../spec/schema.js';
import { type EmbedderOptions, checkEmbedder } from './embed.js';
import { type Reranker, type RerankerOptions, checkReranker } from './rerank.js';
import { type ProgressOptions, requestWithProgress, toWireBody } from './shared.js';

/** What {@link Evaluate.retrieval} takes: a retrieval set (`queries` + `corpus` + `qrels`), `sts`, or both. */
export interface RetrievalEvalInput extends EmbedderOptions {
  /** Query texts by query id. */
  readonly queries?: Readonly<Record<string, string>>;
  /** Document texts by document id. */
  readonly corpus?: Readonly<Record<string, string>>;
  /** Relevance grades: `qrels[queryId][docId]`, > 0 is relevant (BEIR / trec_eval format). */
  readonly qrels?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Cut-offs for nDCG@k, Recall@k, MRR@k. Default [1, 10, 100] (`evaluation/retrieval.py`, as BEIR). */
  readonly kValues?: readonly number[];
  /** Sentence pairs with gold similarity scores, for Spearman correlation (STS benchmarks). */
  readonly sts?: { readonly pairs: readonly (readonly [string, string])[]; readonly scores: readonly number[] };
}

/** Metric names as the worker reports them (`ndcg@10`, `recall@100`, `mrr@10`, `sts_spearman`). */
export type RetrievalMetricName = `${'ndcg' | 'recall' | 'mrr'}@${number}` | 'sts_spearman';

/** Metrics of {@link Evaluate.retrieval}; scores are cosine similarities. */
export interface RetrievalEvaluation {
  /** `'suffix_tuning'` or `'base'`. */
  readonly source: string;
  /** `ndcg@k`, `recall@k`, `mrr@k` for each k (with a retrieval set); `sts_spearman` (with `sts`). */
  readonly metrics: Readonly<Partial<Record<RetrievalMetricName, number>>>;
  /** Queries evaluated (those with at least one relevant document). */
  readonly queries: number;
  readonly corpus: number;
  /** STS pairs evaluated. */
  readonly pairs: number;
}

/** One query with its relevant passage and (optionally) hard negatives. */
export interface RerankingEvalRow {
  readonly query: string;
  readonly positive: string;
  /** Give negatives: a row without any is trivially ranked first. */
  readonly negatives?: readonly string[];
}

/** What {@link Evaluate.reranking} takes. */
export interface RerankingEvalInput extends RerankerOptions {
  readonly rows: readonly RerankingEvalRow[];
}

/** Metrics of {@link Evaluate.reranking} (`evaluation/reranking.py`, pessimistic ties). */
export interface RerankingEvaluation {
  readonly reranker: Reranker;
  readonly queries: number;
  readonly metrics: {
    readonly 'hits@1': number;
    readonly 'hits@5': number;
    readonly mrr: number;
    readonly 'ndcg@10': number;
    readonly [name: string]: number;
  };
}

// The documented types are the worker's request and reply bodies (proto/schema/), or this fails to compile.
// The metrics are typed by name here (the worker's reply says only: a map of numbers).
true satisfies Same<RetrievalEvalInput, EvaluateRetrievalRequest>;
true satisfies Same<Omit<RetrievalEvaluation, 'metrics'>, Omit<EvaluateRetrievalReply, 'metrics'>>;
true satisfies Same<RerankingEvalInput, EvaluateRerankingRequest>;
true satisfies Same<Omit<RerankingEvaluation, 'metrics'>, Omit<EvaluateRerankingReply, 'metrics'>>;

const retrievalSchema = z
  .strictObject({
    ...evaluateRetrievalRequestFields,
    sts: z
      .strictObject(stsSetFields)
      .refine((s) => s.scores.length === s.pairs.length, { path: ['scores'], message: 'expected one score per pair' })
      .optional(),
  })
  .superRefine((v, ctx) => {
    checkEmbedder(v, ctx);
    const parts = (['queries', 'corpus', 'qrels'] as const).filter((k) => v[k] !== undefined);
    if (parts.length === 0 && v.sts === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: "give 'queries' + 'corpus' + 'qrels', or 'sts', or both" });
    } else if (parts.length > 0) {
      for (const k of ['queries', 'corpus', 'qrels'] as const) {
        if (v[k] === undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'required with a retrieval set' });
      }
    }
  });

const rerankingSchema = z.strictObject(evaluateRerankingRequestFields).superRefine(checkReranker);

const rerankingReply = evaluateRerankingReplySchema.extend({
  metrics: evaluateRerankingReplyFields.metrics.refine((m) => ['hits@1', 'hits@5', 'mrr', 'ndcg@10'].every((k) => k in m), 'missing metrics'),
});

/**
 * Evaluation in the worker (`sp.evaluate`).
 *
 * @example
 * const { metrics } = await sp.evaluate.retrieval({ model, queries, corpus, qrels });
 * metrics['ndcg@10'];
 * const r = await sp.evaluate.reranking({ model, rows: [{ query, positive, negatives }] });
 * r.metrics.mrr;
 */
export class Evaluate {
  readonly #rpc: Rpc;

  /** @internal The client makes this; use `sp.evaluate`. */
  constructor(rpc: Rpc) {
    this.#rpc = rpc;
  }

  /** nDCG@k, Recall@k, MRR@k of retrieval by cosine similarity, and/or STS Spearman correlation. */
  async retrieval(input: RetrievalEvalInput, options?: ProgressOptions): Promise<RetrievalEvaluation> {
    const body = toWireBody(parseOrThrow(retrievalSchema, input, 'evaluate.retrieval'), ['queries', 'corpus', 'qrels', 'sts']);
    const decode = (reply: Incoming): RetrievalEvaluation => evaluateRetrievalReplySchema.parse(reply.body);
    return requestWithProgress(this.#rpc, 'evaluate_retrieval', body, decode, options);
  }

  /** Hits@1, Hits@5, MRR and nDCG@10 of reranking each row's positive among its negatives. */
  async reranking(input: RerankingEvalInput, options?: ProgressOptions): Promise<RerankingEvaluation> {
    const body = toWireBody(parseOrThrow(rerankingSchema, input, 'evaluate.reranking'), ['rows']);
    const decode = (reply: Incoming): RerankingEvaluation => rerankingReply.parse(reply.body) as RerankingEvaluation;
    return requestWithProgress(this.#rpc, 'evaluate_reranking', body, decode, options);
  }
}
