/**
 * `sp.classify`: rank classification with loaded soft prompts (op `classify`,
 * `python/softprompt_worker/ops/inference.py`): each label is scored by its summed log-likelihood as
 * the continuation of the input, and the best label wins.
 */
import { z } from 'zod';
import type { CallOptions, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { type ClassifyReply, classifyReplySchema } from '../gen/schema/classify-reply.js';
import { type ClassifyRequest, classifyRequestFields } from '../gen/schema/classify-request.js';
import type { Same } from '../spec/schema.js';
import { type PromptSelection, checkPromptSelection } from './generate.js';
import { toWireBody } from './shared.js';

/** What {@link classify} takes. */
export interface ClassifyInput extends PromptSelection {
  /** The texts to classify. */
  readonly inputs: readonly string[];
  /** The candidate labels, at least two non-empty strings, scored as continuations of each input. */
  readonly labels: readonly string[];
  /** Rows per forward pass; changes speed and memory, never the result. Default 16 (`ops/inference.py`). */
  readonly batchSize?: number;
}

/** One prediction per input. */
export interface ClassifyResult {
  /** The best label for each input. */
  readonly predictions: string[];
  /** `scores[i][j]`: summed log-likelihood of `labels[j]` after `inputs[i]` (higher is likelier). */
  readonly scores: number[][];
}

// The documented input and result are the worker's ClassifyRequest and ClassifyReply (proto/schema/), or this fails to compile.
true satisfies Same<ClassifyInput, ClassifyRequest>;
true satisfies Same<ClassifyResult, ClassifyReply>;

const classifySchema = z.strictObject(classifyRequestFields).superRefine(checkPromptSelection);

/**
 * Picks the likeliest label for each input.
 *
 * @example
 * const { predictions } = await sp.classify({ prompt: 'sentiment', inputs: ['great!'], labels: ['positive', 'negative'] });
 */
export async function classify(rpc: Rpc, input: ClassifyInput, options?: CallOptions): Promise<ClassifyResult> {
  const body = toWireBody(parseOrThrow(classifySchema, input, 'classify'));
  return rpc.request('classify', body, undefined, { ...options, decode: (reply) => classifyReplySchema.parse(reply.body) });
}
