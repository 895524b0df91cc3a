/**
 * `sp.generate`: text generation with loaded soft prompts, streamed token by token (op `generate`,
 * `python/softprompt_worker/ops/inference.py`). One call may mix prompts (one per row); each row gets
 * exactly what it would get alone.
 */
import { z } from 'zod';
import { EventStream } from '../core/event-stream.js';
import type { ModelSpec } from '../spec/model-spec.js';
import type { CallOptions, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import { generateEventSchema } from '../gen/schema/generate-event.js';
import { type GenerateReply, generateReplySchema } from '../gen/schema/generate-reply.js';
import { type GenerateRequest, generateRequestFields } from '../gen/schema/generate-request.js';
import type { Same } from '../spec/schema.js';
import { toWireBody } from './shared.js';

/** Which soft prompt each row uses: one for all rows (`prompt`), one per row (`prompts`), or none. */
export interface PromptSelection {
  /**
   * The base model. May be left out when a prompt is named: the prompts' model is used. Required
   * when no row has a prompt.
   */
  readonly model?: ModelSpec;
  /** A `prompt_tuning`, `prefix_tuning` or `p_tuning` prompt loaded with `sp.prompts.load`, for every row. Default: none (the bare model). */
  readonly prompt?: string;
  /** One loaded prompt name (or `null`: none) per input, instead of `prompt`. */
  readonly prompts?: readonly (string | null)[];
}

/** What {@link generate} takes. Defaults are the worker's (`inference.GenerationOptions`), which follow Hugging Face `generate`. */
export interface GenerateInput extends PromptSelection {
  /** The texts to continue, one output per input. */
  readonly inputs: readonly string[];
  /** Most tokens generated per row, 1..4096. Default 64 (`GenerationOptions.max_new_tokens`). */
  readonly maxNewTokens?: number;
  /** Sample instead of greedy decoding. Default false: greedy, deterministic (HF `do_sample=False`). */
  readonly doSample?: boolean;
  /** Sampling temperature, > 0; only with `doSample`. Default 1.0 (HF `temperature`). */
  readonly temperature?: number;
  /** Nucleus sampling mass, in (0, 1]; only with `doSample`. Default 1.0: off (HF `top_p`). */
  readonly topP?: number;
  /** Seeds each row's sampler, so sampled outputs repeat. Default 0 (`GenerationOptions.seed`). */
  readonly seed?: number;
  /** A row ends before the first of these strings (never streamed). Default none. */
  readonly stop?: readonly string[];
  /** Rows per forward pass; changes speed and memory, never the output. Default 16 (`ops/inference.py`). */
  readonly batchSize?: number;
}

/** New text for one row. Concatenating a row's deltas gives its output. */
export interface GenerateDelta {
  /** Index into `inputs`. */
  readonly row: number;
  /** Text added since the row's previous delta. */
  readonly text: string;
  /** The tokens that produced it. */
  readonly tokenIds: readonly number[];
}

/** The finished generation: `outputs[i]` continues `inputs[i]` (without the input). */
export interface GenerateResult {
  readonly outputs: string[];
}

/** `prompt` xor `prompts`, one per input, and a model when no prompt is named. */
export function checkPromptSelection(
  v: { model?: unknown; prompt?: string | undefined; prompts?: (string | null)[] | undefined; inputs: string[] },
  ctx: z.RefinementCtx,
): void {
  if (v.prompt !== undefined && v.prompts !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['prompts'], message: "give 'prompt' (all rows) or 'prompts' (one per row), not both" });
  }
  if (v.prompts !== undefined && v.prompts.length !== v.inputs.length) {
    ctx.addIssue({
      code: 'custom',
      path: ['prompts'],
      message: `expected one entry per input (${v.inputs.length}), got ${v.prompts.length}`,
    });
  }
  const named = v.prompt !== undefined || (v.prompts ?? []).some((p) => p !== null);
  if (v.model === undefined && !named) {
    ctx.addIssue({ code: 'custom', path: ['model'], message: 'required when no prompt is named' });
  }
}

// The documented input and result are the worker's GenerateRequest (its decoding options: GenerationOptions)
// and GenerateReply (proto/schema/), or this fails to compile.
true satisfies Same<GenerateInput, GenerateRequest>;
true satisfies Same<GenerateResult, GenerateReply>;

const generateSchema = z.strictObject(generateRequestFields).superRefine(checkPromptSelection);

const deltaSchema = generateEventSchema.transform((d): GenerateDelta => ({ row: d.row, text: d.text, tokenIds: d.token_ids }));

/**
 * Generates a continuation of each input, streaming text deltas as tokens are produced.
 *
 * @example
 * const stream = sp.generate({ prompt: 'sentiment', inputs: ['a great film', 'a dull film'], maxNewTokens: 8 });
 * for await (const { row, text } of stream) process.stdout.write(`[${row}] ${text}\n`);
 * const { outputs } = await stream.result();
 *
 * @throws {ValidationError} (synchronously) an option is invalid: `generate.topP: ...`.
 */
export function generate(rpc: Rpc, input: GenerateInput, options?: CallOptions): EventStream<GenerateDelta, GenerateResult> {
  const body = toWireBody(parseOrThrow(generateSchema, input, 'generate'));
  return rpc.stream('generate', body, undefined, {
    ...options,
    idleDeadline: true, // requestTimeoutMs since the last delta: a stopped worker fails the call
    decodeEvent: (event) => deltaSchema.parse(event.body),
    decodeFinal: (reply) => generateReplySchema.parse(reply.body),
  });
}
