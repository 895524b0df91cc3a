/**
 * `sp.checkpoints`: read a checkpoint's metadata, and move prompts in and out of PEFT's adapter format.
 * Mirrors python/softprompt_worker/ops/checkpoints.py (`checkpoint_inspect`) and ops/peft.py
 * (`checkpoint_export_peft`, `checkpoint_import_peft`).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { METHOD_NAMES } from '../gen/schema/methods.js';
import { type CheckpointExportPeftReply, checkpointExportPeftReplySchema } from '../gen/schema/checkpoint-export-peft-reply.js';
import type { CheckpointExportPeftRequest } from '../gen/schema/checkpoint-export-peft-request.js';
import { type CheckpointImportPeftReply, checkpointImportPeftReplySchema } from '../gen/schema/checkpoint-import-peft-reply.js';
import { type CheckpointImportPeftRequest, checkpointImportPeftRequestFields } from '../gen/schema/checkpoint-import-peft-request.js';
import { type CheckpointInspectReply, checkpointInspectReplySchema } from '../gen/schema/checkpoint-inspect-reply.js';
import type { CheckpointInspectRequest } from '../gen/schema/checkpoint-inspect-request.js';
import { ProtocolError } from '../core/errors.js';
import type { CallOptions, Incoming, Rpc } from '../internal/rpc.js';
import { parseOrThrow } from '../internal/validate.js';
import type { WireMap } from '../internal/wire.js';
import { type Camel, camelized, toSnake } from '../spec/case.js';
import { type ModelSpec, modelSpecSchema } from '../spec/model-spec.js';
import { type Same, nonEmpty } from '../spec/schema.js';
import type { MethodName } from './spec.js';

/** What `sp.checkpoints.inspect` reports; no tensor data is read into TS. */
export interface CheckpointInfo {
  readonly path: string;
  readonly method: MethodName;
  /** The method's options, named as in its builder (`numVirtualTokens`, ...). */
  readonly methodConfig: Readonly<Record<string, unknown>>;
  /** The model it was trained on; `fingerprint` identifies the architecture and parameter shapes. */
  readonly baseModel: {
    readonly nameOrPath: string;
    readonly modelType: string;
    readonly fingerprint: string;
    readonly hiddenSize: number;
    readonly numLayers: number;
  };
  readonly step: number;
  readonly metrics: Readonly<Record<string, number>>;
  /** Versions of softprompt, torch, transformers and peft that wrote it. */
  readonly versions: Readonly<Record<string, string>>;
  readonly createdUnixMs: number;
  /** sha256 of the content, verified on load. */
  readonly contentSha256: string;
  /** True when it holds training state (`resumeFrom` can continue it). */
  readonly resumable: boolean;
  /** Soft-prompt tensors by name: torch dtype (`'float32'`) and shape. */
  readonly tensors: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly number[] }>>;
  /** Whether it fits `options.model` (same fingerprint); only when a model was given. */
  readonly compatible?: boolean;
}

/** What `sp.checkpoints.exportPeft` wrote. */
export interface PeftExport {
  readonly outDir: string;
  readonly method: MethodName;
  /** File names inside `outDir`: `adapter_config.json`, `adapter_model.safetensors`. */
  readonly files: readonly string[];
}

/** What `sp.checkpoints.importPeft` wrote. */
export interface ImportedCheckpoint {
  /** The checkpoint file written. */
  readonly path: string;
  readonly method: MethodName;
  readonly methodConfig: Readonly<Record<string, unknown>>;
}

export interface InspectOptions extends CallOptions {
  /** Also report whether the checkpoint fits this model (`compatible`). Loads the model. */
  readonly model?: ModelSpec;
}

export interface ExportPeftOptions extends CallOptions {
  /** The model to build the adapter on. Default: the checkpoint's own model (`baseModel.nameOrPath`). */
  readonly model?: ModelSpec;
}

export interface ImportPeftInput {
  /** A PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`). */
  readonly adapterDir: string;
  /** The base model the adapter was trained on. */
  readonly model: ModelSpec;
  /** The checkpoint file to write (`.pb`). */
  readonly out: string;
}

const path = nonEmpty().transform((p) => resolve(p));
const methodName = z.enum(METHOD_NAMES);
// Data maps: their keys are names (metrics, tensors, packages), never translated.
const KEEP = ['metrics', 'tensors', 'versions'] as const;
type Wire<T> = Camel<T, (typeof KEEP)[number]>;

// The documented types are the worker's replies (proto/schema/checkpoint_*_reply.json), or this fails to
// compile; the SDK types `method` as a MethodName, and does not show the base model's resolved spec.
type Info = Wire<CheckpointInspectReply>;
true satisfies Same<Omit<CheckpointInfo, 'method' | 'baseModel'>, Omit<Info, 'method' | 'baseModel'>>;
true satisfies Same<CheckpointInfo['baseModel'], Omit<Info['baseModel'], 'modelSpec'>>;
true satisfies Same<Omit<PeftExport, 'method'>, Omit<Wire<CheckpointExportPeftReply>, 'method'>>;
true satisfies Same<Omit<ImportedCheckpoint, 'method'>, Omit<Wire<CheckpointImportPeftReply>, 'method'>>;
true satisfies Same<ImportPeftInput, CheckpointImportPeftRequest>;

const infoSchema = checkpointInspectReplySchema.extend({ method: methodName });
const exportSchema = checkpointExportPeftReplySchema.extend({ method: methodName });
const importSchema = checkpointImportPeftReplySchema.extend({ method: methodName });
const importInputSchema = z.strictObject({
  ...checkpointImportPeftRequestFields,
  adapterDir: checkpointImportPeftRequestFields.adapterDir.transform((p) => resolve(p)),
  out: checkpointImportPeftRequestFields.out.transform((p) => resolve(p)),
});

/**
 * A `checkpoint_inspect` body (snake_case, as the worker and `inspectCheckpoint` build it) as a
 * {@link CheckpointInfo}; throws {@link ProtocolError} naming what does not fit.
 */
export function parseCheckpointInfo(body: Readonly<Record<string, unknown>>, what = 'checkpoint_inspect reply'): CheckpointInfo {
  const parsed = infoSchema.safeParse(body);
  if (!parsed.success) throw new ProtocolError(`${what}: ${z.prettifyError(parsed.error)}`);
  const { model_spec: _, ...baseModel } = parsed.data.base_model;
  return { ...camelized(parsed.data, KEEP), baseModel: camelized(baseModel) };
}

function decoder<T extends z.ZodType>(op: string, schema: T): (reply: Incoming) => Wire<z.output<T>> {
  return (reply) => {
    const parsed = schema.safeParse(reply.body);
    if (!parsed.success) throw new ProtocolError(`${op} reply: ${z.prettifyError(parsed.error)}`);
    return camelized(parsed.data as z.output<T>, KEEP);
  };
}

/** The validated spec of an optional `model` option, named `root` in errors. */
function model(spec: ModelSpec | undefined, root: string): ModelSpec | undefined {
  return spec === undefined ? undefined : parseOrThrow(modelSpecSchema, spec, root);
}

/** A request body as the worker names it; a model's `overrides` are passed as they are. */
function wire(request: object): WireMap {
  return toSnake(request, ['overrides']) as WireMap;
}

/**
 * Checkpoint helpers, reached as `sp.checkpoints`.
 *
 * @example
 * const info = await sp.checkpoints.inspect(result.checkpoint, { model: { nameOrPath: 'gpt2' } });
 * console.log(info.method, info.step, info.compatible);
 * await sp.checkpoints.exportPeft(result.checkpoint, 'adapters/sst2');   // load with PeftModel.from_pretrained
 */
export class Checkpoints {
  readonly #rpc: Rpc;

  /** @internal Made by the client; use `sp.checkpoints`. */
  constructor(rpc: Rpc) {
    this.#rpc = rpc;
  }

  /**
   * Reads a checkpoint's metadata in the worker (its content hash is verified); with `options.model`,
   * whether it fits. The path is the worker's: on a remote worker, a file on its machine. For a local
   * file without a model, `inspectCheckpoint(path)` reads the same without any worker.
   */
  async inspect(checkpoint: string, options: InspectOptions = {}): Promise<CheckpointInfo> {
    const { model: spec, ...call } = options;
    const request = { path: parseOrThrow(path, checkpoint, 'path'), model: model(spec, 'options.model') } satisfies CheckpointInspectRequest;
    return this.#rpc.request('checkpoint_inspect', wire(request), undefined, { ...call, decode: (reply) => parseCheckpointInfo(reply.body) });
  }

  /**
   * Writes a checkpoint as a PEFT adapter directory (`PeftModel.from_pretrained(base, outDir)` loads
   * it). Prompt tuning on any model, prefix tuning on decoder-only models; anything PEFT cannot
   * represent is a `RemoteError` with code `invalid_argument` that says why.
   */
  async exportPeft(checkpoint: string, outDir: string, options: ExportPeftOptions = {}): Promise<PeftExport> {
    const { model: spec, ...call } = options;
    const request = {
      checkpoint: parseOrThrow(path, checkpoint, 'checkpoint'),
      outDir: parseOrThrow(path, outDir, 'outDir'),
      model: model(spec, 'options.model'),
    } satisfies CheckpointExportPeftRequest;
    return this.#rpc.request('checkpoint_export_peft', wire(request), undefined, { ...call, decode: decoder('checkpoint_export_peft', exportSchema) });
  }

  /** Turns a PEFT adapter directory into a softprompt checkpoint (usable for inference and as an init). */
  async importPeft(input: ImportPeftInput, options: CallOptions = {}): Promise<ImportedCheckpoint> {
    const request = parseOrThrow(importInputSchema, input, 'input');
    return this.#rpc.request('checkpoint_import_peft', wire(request), undefined, { ...options, decode: decoder('checkpoint_import_peft', importSchema) });
  }
}
