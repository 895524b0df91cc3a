/**
 * `sp.embed`: text embeddings (op `embed`, `python/softprompt_worker/ops/embedding.py`), from a
 * `suffix_tuning` prompt or, without one, the frozen base model (mean pooling: the usual baseline).
 * The result views the reply's tensor frame: no copy of the `(count, dim)` f32 matrix.
 */
import { z } from 'zod';
import type { ModelSpec } from '../spec/model-spec.js';
import type { Incoming, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { type EmbedReply, embedReplySchema } from '../gen/schema/embed-reply.js';
import { type EmbedRequest, embedRequestFields } from '../gen/schema/embed-request.js';
import type { Same } from '../spec/schema.js';
import { Matrix } from './matrix.js';
import { type ProgressOptions, requestWithProgress, toWireBody } from './shared.js';

/** How token states become one vector (`methods/suffix_tuning.py` `POOLINGS`). */
export const POOLINGS = ['last', 'mean', 'text_mean', 'first'] as const;
export type Pooling = (typeof POOLINGS)[number];
// The worker's POOLINGS (proto/schema/embed_reply.json), or this fails to compile.
true satisfies Same<Pooling, EmbedReply['pooling']>;

/** Options shared by {@link embed} and `sp.evaluate.retrieval`: which embedder. */
export interface EmbedderOptions {
  /**
   * The base model. Required without `prompt`; may be left out with one (the prompt's model: the one
   * it was loaded on, or the one its checkpoint records).
   */
  readonly model?: ModelSpec;
  /**
   * A `suffix_tuning` prompt: the name of a prompt loaded with `sp.prompts.load`, else a checkpoint
   * path (the worker keeps it ready, keyed by path and modification time). A prompt of another method
   * is refused (`RemoteError` `invalid_argument`). Default: none, the base model embeds by mean pooling.
   */
  readonly prompt?: string;
  /** Texts per forward pass, 1..4096; changes speed and memory, never the result. Default 32 (`ops/embedding.py`). */
  readonly batchSize?: number;
  /**
   * `'last'` (the last suffix position; SPT's choice), `'mean'` (over real tokens) or `'first'`.
   * Default: the prompt's trained `pooling`; `'mean'` without a prompt (`ops/embedding.py`).
   */
  readonly pooling?: Pooling;
}

/** What {@link embed} takes. */
export interface EmbedInput extends EmbedderOptions {
  /** The texts; row `i` of the result embeds `texts[i]`. */
  readonly texts: readonly string[];
  /** L2-normalise each row. Default: the prompt's trained `normalize`; true without a prompt (`ops/embedding.py`). */
  readonly normalize?: boolean;
}

/** `texts.length × dim` embeddings, row `i` for `texts[i]`, plus how they were made. */
export class Embeddings extends Matrix {
  /** The pooling used. */
  readonly pooling: Pooling;
  /** Whether rows are unit length (cosine similarity is then their dot product). */
  readonly normalized: boolean;
  /** `'suffix_tuning'` (a trained prompt) or `'base'` (the bare model). */
  readonly source: string;

  /** @internal Made by {@link embed}. */
  constructor(data: Float32Array, rows: number, dim: number, info: { pooling: Pooling; normalized: boolean; source: string }) {
    super(data, rows, dim);
    this.pooling = info.pooling;
    this.normalized = info.normalized;
    this.source = info.source;
  }

  /** The embedding dimension (same as {@link cols}). */
  get dim(): number {
    return this.cols;
  }
}

export function checkEmbedder(v: { model?: unknown; prompt?: string | undefined }, ctx: z.RefinementCtx): void {
  if (v.model === undefined && v.prompt === undefined) {
    ctx.addIssue({ code: 'custom', path: ['model'], message: 'required when no prompt is given' });
  }
}

// The documented input is the worker's EmbedRequest (proto/schema/embed_request.json), or this fails to compile.
true satisfies Same<EmbedInput, EmbedRequest>;

const embedSchema = z.strictObject(embedRequestFields).superRefine(checkEmbedder);

function decodeEmbeddings(reply: Incoming): Embeddings {
  const info = embedReplySchema.parse(reply.body);
  const t = reply.tensors['embeddings'];
  if (t === undefined || t.dtype !== 'f32' || t.shape.length !== 2 || t.shape[0] !== info.count || t.shape[1] !== info.dim) {
    const got = t ? `${t.dtype} [${t.shape.join(', ')}]` : 'none';
    throw new Error(`expected tensor "embeddings" f32 [${info.count}, ${info.dim}], got ${got}`);
  }
  return new Embeddings(t.data as Float32Array, info.count, info.dim, info);
}

/**
 * Embeds `texts`.
 *
 * @example
 * const e = await sp.embed({ model: { tiny: 'gpt2' }, texts: ['a cat', 'a dog'] });
 * e.rows; e.dim; e.row(0); e.cosine(0, 1);
 */
export async function embed(rpc: Rpc, input: EmbedInput, options?: ProgressOptions): Promise<Embeddings> {
  const body = toWireBody(parseOrThrow(embedSchema, input, 'embed'));
  return requestWithProgress(rpc, 'embed', body, decodeEmbeddings, options);
}
