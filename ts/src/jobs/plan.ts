/**
 * Memory planning: a job's estimated peak memory on a device, whether it fits a budget, and what to
 * change when it does not (`sp.plan(spec, { gpu: '24GiB' })`; the worker's `plan` op,
 * python/softprompt_worker/planner/). Nothing is loaded: the model is built from its config on the
 * worker's `meta` device. How the estimate is made and how close it is: docs/memory.md.
 */
import { z } from 'zod';
import { ProtocolError, ValidationError } from '../core/errors.js';
import { type PlanReply, planReplySchema } from '../gen/schema/plan-reply.js';
import { type PlanRequest, planRequestFields } from '../gen/schema/plan-request.js';
import type { Rpc } from '../internal/rpc.js';
import type { WireMap } from '../internal/wire.js';
import { type Camel, camelized } from '../spec/case.js';
import type { Same } from '../spec/schema.js';
import { type JobSpec, jobBody } from './spec.js';

const UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/**
 * Bytes from a size: a number of bytes, or a string with a decimal (`GB`: 10^9) or binary (`GiB`: 2^30)
 * unit, case-insensitive: `'24GiB'`, `'80GB'`, `'1.5 TiB'`, `'512MiB'`, `'1000000'`.
 *
 * @throws {ValidationError} not a positive size.
 */
export function parseBytes(value: number | string, name = 'gpu'): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return value;
    throw new ValidationError(`${name}: expected a positive whole number of bytes, got ${value}`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(value);
  const bytes = match ? Math.round(Number(match[1]) * UNITS[(match[2] ?? '').toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new ValidationError(`${name}: expected a size such as 24GiB, 80GB or 512MiB, got '${value}'`);
  }
  return bytes;
}

/** Options of {@link plan}. */
export interface PlanOptions {
  /** The memory budget: bytes, or a size such as `'24GiB'` / `'80GB'`. Default: the worker's CUDA device's total memory (none on a CPU-only worker: no verdict). */
  readonly gpu?: number | string;
  /** What to plan for. Default: `'cuda'` when `gpu` is given or the worker has CUDA, else `'cpu'` (f32). */
  readonly device?: 'cuda' | 'cpu';
  /** Hard negatives per row (suffix and passage tuning). Default: the most any inline row has; with rows in a file, 0 (suffix) or `maxHardNegatives` (passage). */
  readonly negatives?: number;
  readonly signal?: AbortSignal;
}

const planOptionsSchema = z.strictObject({
  gpu: z.union([z.number(), z.string()]).optional(), // sent as gpuBytes, after parseBytes
  device: planRequestFields.device,
  negatives: planRequestFields.negatives,
  signal: z.instanceof(AbortSignal).optional(),
});

/** Bytes by part of the peak; they sum to {@link MemoryPlan.peakBytes}. */
export interface MemoryBreakdown {
  /** The frozen model's weights (packed where quantized) and buffers. */
  readonly weights: number;
  /** The soft parameters (f32). */
  readonly softParams: number;
  readonly gradients: number;
  /** AdamW's two moments (Adafactor: factored; SGD: none). */
  readonly optimizer: number;
  /** What the frozen layers keep for backward (with gradient checkpointing: each layer's input and one layer). */
  readonly activations: number;
  /** Logits and the loss's f32 log-softmax and gradients. */
  readonly logits: number;
  /** Input embeddings, the attention mask, backward's working set beyond the logits. */
  readonly other: number;
  /** CUDA only: context, workspaces and allocator slack (a fixed 1 GiB). */
  readonly cudaReserve?: number;
}

/** One change that would make the job fit (or come closer). */
export interface PlanSuggestion {
  /** Fields to change, by wire path: `{ 'training.gradient_checkpointing': true }`, `{ 'model.quantization': 'nf4' }`, `{ 'training.max_length': 2048 }`. */
  readonly change: Readonly<Record<string, unknown>>;
  readonly peakBytes: number;
  readonly fits: boolean;
  /** The change in words. */
  readonly text: string;
}

/** The settings the estimate used (after defaults). */
export interface PlanSettings {
  readonly method: string;
  readonly batchSize: number;
  /** Tokens per row (prompt/prefix tuning), per text (suffix), per passage (passage tuning). */
  readonly seq: number;
  /** Where a job sets `seq`: `training.max_length` or `method_config.max_passage_tokens`. */
  readonly seqField: string;
  readonly virtualTokens: number;
  readonly negatives: number;
  readonly gradientCheckpointing: boolean;
  readonly quantization: 'int8' | 'nf4' | null;
  readonly weightsDtype: string;
  readonly computeDtype: string;
  readonly optimizer: string;
  readonly frozenParams: number;
  readonly trainableParams: number;
  readonly layers: number;
  readonly hidden: number;
  readonly vocab: number;
}

/** The planner's answer for one job. */
export interface MemoryPlan {
  /** Whether the peak fits the budget; undefined without a budget. */
  readonly fits: boolean | undefined;
  readonly peakBytes: number;
  readonly budgetBytes: number | undefined;
  /** `'given'` (options.gpu), `'device'` (the worker's CUDA device), or undefined. */
  readonly budgetSource: 'given' | 'device' | undefined;
  readonly device: 'cuda' | 'cpu';
  readonly breakdown: MemoryBreakdown;
  readonly settings: PlanSettings;
  /** The longest `seq` that fits the budget with everything else unchanged (0: none); undefined without a budget. */
  readonly longestSeq: number | undefined;
  /** When it does not fit: changes, the ones that fit first. */
  readonly suggestions: readonly PlanSuggestion[];
}

// `change` keys are wire paths (data): kept as the worker wrote them.
type Wire<T> = Camel<T, 'change'>;
type Unset = 'fits' | 'budgetBytes' | 'budgetSource' | 'longestSeq'; // null on the wire, undefined here

// The documented types are the worker's PlanReply (proto/schema/plan_reply.json), or this fails to compile.
true satisfies Same<MemoryBreakdown, Wire<PlanReply['breakdown']>>;
true satisfies Same<PlanSettings, Wire<PlanReply['settings']>>;
true satisfies Same<PlanSuggestion, Wire<PlanReply['suggestions'][number]>>;
true satisfies Same<Omit<MemoryPlan, Unset>, Omit<Wire<PlanReply>, Unset>>;
true satisfies Same<{ [K in Unset]-?: Exclude<MemoryPlan[K], undefined> | null }, Pick<Wire<PlanReply>, Unset>>;
// The options are the worker's, but for the budget (a size here, bytes there).
true satisfies Same<Omit<z.output<typeof planOptionsSchema>, 'gpu' | 'signal'>, Pick<PlanRequest, 'device' | 'negatives'>>;

/** The `plan` request body for `spec`. */
export function planBody(spec: JobSpec, options: PlanOptions = {}): WireMap {
  const parsed = planOptionsSchema.safeParse(options);
  if (!parsed.success) throw ValidationError.fromZod(parsed.error, 'options');
  const { gpu, device, negatives } = parsed.data;
  const given = negatives ?? inlineNegatives(spec);
  return {
    ...jobBody(spec),
    ...(gpu === undefined ? {} : { gpu_bytes: parseBytes(gpu, 'options.gpu') }),
    ...(device === undefined ? {} : { device }),
    ...(given === undefined ? {} : { negatives: given }),
  };
}

/** Asks the worker for the memory plan of `spec` (see {@link MemoryPlan}). */
export async function plan(rpc: Rpc, spec: JobSpec, options: PlanOptions = {}): Promise<MemoryPlan> {
  const body = planBody(spec, options);
  const reply = await rpc.request('plan', body, undefined, options.signal ? { signal: options.signal } : {});
  return decodePlan(reply.body);
}

/** The worker's `plan` reply → {@link MemoryPlan}. */
export function decodePlan(body: unknown): MemoryPlan {
  const parsed = planReplySchema.safeParse(body);
  if (!parsed.success) throw new ProtocolError(`plan reply: ${z.prettifyError(parsed.error)}`);
  const r = camelized(parsed.data, ['change']);
  return {
    ...r,
    fits: r.fits ?? undefined,
    budgetBytes: r.budgetBytes ?? undefined,
    budgetSource: r.budgetSource ?? undefined,
    longestSeq: r.longestSeq ?? undefined,
  };
}

/** The most hard negatives an inline training row has (suffix, passage tuning); undefined for file data. */
function inlineNegatives(spec: JobSpec): number | undefined {
  if (spec.method !== 'suffix_tuning' && spec.method !== 'passage_tuning') return undefined;
  const source = spec.data.train as { rows?: unknown };
  if (!Array.isArray(source.rows)) return undefined;
  let most = 0;
  for (const row of source.rows as unknown[]) {
    const negatives = (row as { negatives?: unknown } | null)?.negatives;
    if (Array.isArray(negatives)) most = Math.max(most, negatives.length);
  }
  return most;
}
