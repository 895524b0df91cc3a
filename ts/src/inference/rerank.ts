/**
 * `sp.rerank`: query-likelihood reranking (op `rerank`, `python/softprompt_worker/ops/rerank.py`).
 * Each passage is scored by how likely the LM finds the query after it: UPR (Sachan et al., 2022)
 * with the frozen model and a hard instruction, or a trained `passage_tuning` prompt in its place.
 */
import { z } from 'zod';
import type { ModelSpec } from '../spec/model-spec.js';
import type { Incoming, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { type RerankReply, rerankReplySchema } from '../gen/schema/rerank-reply.js';
import { type RerankRequest, rerankQueryFields, rerankRequestFields } from '../gen/schema/rerank-request.js';
import type { Same } from '../spec/schema.js';
import { type ProgressOptions, requestWithProgress, toWireBody } from './shared.js';

/** Which reranker scored: `'upr'` (no prompt) or `'passage_tuning'`. */
export type Reranker = 'upr' | 'passage_tuning';

/** Options shared by {@link rerank} and `sp.evaluate.reranking`: which reranker. */
export interface RerankerOptions {
  /**
   * The base model (a causal LM). Required without `prompt`; may be left out with one (the prompt's
   * model: the one it was loaded on, or the one its checkpoint records).
   */
  readonly model?: ModelSpec;
  /**
   * A `passage_tuning` prompt: the name of a prompt loaded with `sp.prompts.load`, else a checkpoint
   * path. A prompt of another method is refused (`RemoteError` `invalid_argument`). Default: none,
   * UPR's hard instruction (Sachan et al., 2022).
   */
  readonly prompt?: string;
  /** (query, passage) pairs per forward pass, 1..4096; never changes scores. Default 16 (`ops/rerank.py`). */
  readonly batchSize?: number;
}

/** One query and its candidate passages. */
export interface RerankQuery {
  readonly query: string;
  /** Candidates, non-empty strings. */
  readonly passages: readonly string[];
  /** Keep only the best `topK`. Default: all. */
  readonly topK?: number;
}

/** Reranks one query's passages. */
export interface RerankInput extends RerankerOptions, RerankQuery {}

/** Reranks many queries in one call. */
export interface RerankManyInput extends RerankerOptions {
  readonly queries: readonly RerankQuery[];
  /** Default `topK` for queries that set none. Default: all passages. */
  readonly topK?: number;
}

/** One passage with its scores. */
export interface RankedPassage {
  /** Its index in the query's `passages`. */
  readonly index: number;
  readonly passage: string;
  /** Summed log-likelihood of the query's tokens given the passage (the ranking score). */
  readonly logLikelihood: number;
  /** The same per query token. */
  readonly meanLogLikelihood: number;
}

/** One query's passages, best first (ties keep input order), cut to `topK`. */
export interface Reranked {
  readonly reranker: Reranker;
  readonly passages: RankedPassage[];
}

export function checkReranker(v: { model?: unknown; prompt?: string | undefined }, ctx: z.RefinementCtx): void {
  if (v.model === undefined && v.prompt === undefined) {
    ctx.addIssue({ code: 'custom', path: ['model'], message: 'required when no prompt is given (UPR needs a model)' });
  }
}

// The documented types are the worker's RerankRequest and RerankReply (proto/schema/), or this fails to compile;
// one query (`query` + `passages`) and a default `topK` for all queries are the SDK's conveniences.
true satisfies Same<Omit<RerankManyInput, 'topK'>, RerankRequest>;
true satisfies Same<RerankQuery, RerankRequest['queries'][number]>;
true satisfies Same<Reranker, RerankReply['reranker']>;

const rerankSchema = z
  .strictObject({
    ...rerankRequestFields,
    query: rerankQueryFields.query.optional(),
    passages: rerankQueryFields.passages.optional(),
    queries: rerankRequestFields.queries.optional(),
    topK: rerankQueryFields.topK,
  })
  .superRefine((v, ctx) => {
    checkReranker(v, ctx);
    if (v.queries !== undefined) {
      for (const key of ['query', 'passages'] as const) {
        if (v[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: "give 'query' + 'passages', or 'queries', not both" });
      }
    } else {
      for (const key of ['query', 'passages'] as const) {
        if (v[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: "required (or give 'queries')" });
      }
    }
  })
  .transform(({ query, passages, queries, topK, ...reranker }) => {
    const list = queries ?? [{ query: query!, passages: passages!, topK: undefined }];
    return toWireBody({ ...reranker, queries: list.map((q) => ({ ...q, topK: q.topK ?? topK })) });
  });

function decoder(queries: readonly { passages: readonly string[] }[]) {
  return (reply: Incoming): Reranked[] => {
    const { reranker, results } = rerankReplySchema.parse(reply.body);
    if (results.length !== queries.length) throw new Error(`expected ${queries.length} results, got ${results.length}`);
    return results.map((r, q) => ({
      reranker,
      passages: r.indices.map((index, k) => {
        const passage = queries[q]!.passages[index];
        if (passage === undefined) throw new Error(`results[${q}]: index ${index} is outside the passages`);
        return { index, passage, logLikelihood: r.log_likelihood[k]!, meanLogLikelihood: r.mean_log_likelihood[k]! };
      }),
    }));
  };
}

/**
 * Orders passages by how well they explain the query: one query (`query` + `passages`) or many
 * (`queries`, one result per query in order).
 *
 * @example
 * const { passages } = await sp.rerank({ model: { tiny: 'gpt2' }, query: 'who wrote it?', passages: docs, topK: 3 });
 * passages[0].passage; passages[0].logLikelihood;
 */
export async function rerank(rpc: Rpc, input: RerankInput, options?: ProgressOptions): Promise<Reranked>;
export async function rerank(rpc: Rpc, input: RerankManyInput, options?: ProgressOptions): Promise<Reranked[]>;
export async function rerank(rpc: Rpc, input: RerankInput | RerankManyInput, options?: ProgressOptions): Promise<Reranked | Reranked[]>;
export async function rerank(rpc: Rpc, input: RerankInput | RerankManyInput, options?: ProgressOptions): Promise<Reranked | Reranked[]> {
  const body = parseOrThrow(rerankSchema, input, 'rerank');
  const many = 'queries' in input && input.queries !== undefined;
  const queries = many ? (input as RerankManyInput).queries : [input as RerankInput];
  const results = await requestWithProgress(rpc, 'rerank', body, decoder(queries), options);
  return many ? results : results[0]!;
}
