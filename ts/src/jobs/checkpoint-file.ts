/**
 * Reading a checkpoint file in TypeScript, with no worker: the `Checkpoint` message of
 * `proto/softprompt/v1/checkpoint.proto`, decoded by the ts-proto code generated from it
 * (`ts/src/gen/softprompt/v1/checkpoint.ts`), checked as the worker checks it
 * (`python/softprompt_worker/checkpoints.py`, `load_checkpoint`): a format version this SDK reads, a
 * method, the content sha256, and tensor sizes that match their shapes. The result is the same
 * {@link CheckpointInfo} `sp.checkpoints.inspect` returns.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { SoftpromptError } from '../core/errors.js';
import { Checkpoint } from '../gen/softprompt/v1/checkpoint.js';
import { DType, type Tensor } from '../gen/softprompt/v1/tensor.js';
import { type CheckpointInfo, parseCheckpointInfo } from './checkpoints.js';

/** The newest checkpoint format this SDK reads (`checkpoints.py` `FORMAT_VERSION`). */
export const CHECKPOINT_FORMAT_VERSION = 1;
/** `Checkpoint.content_sha256`'s field number: the hash covers every other field. */
const CONTENT_SHA256_FIELD = 12;

/** Wire dtype → (torch's name, bytes per element), as `describe()` names tensors. */
const DTYPES: ReadonlyMap<DType, readonly [string, number]> = new Map([
  [DType.DTYPE_F32, ['float32', 4]],
  [DType.DTYPE_F16, ['float16', 2]],
  [DType.DTYPE_BF16, ['bfloat16', 2]],
  [DType.DTYPE_F64, ['float64', 8]],
  [DType.DTYPE_I64, ['int64', 8]],
  [DType.DTYPE_I32, ['int32', 4]],
  [DType.DTYPE_I16, ['int16', 2]],
  [DType.DTYPE_I8, ['int8', 1]],
  [DType.DTYPE_U8, ['uint8', 1]],
  [DType.DTYPE_BOOL, ['bool', 1]],
]);

/**
 * Reads a checkpoint's metadata from a local file (no tensor data is kept), verifying it as the worker
 * does. `compatible` is never set: that needs the model (`sp.checkpoints.inspect(path, { model })`).
 *
 * @example
 * const info = await inspectCheckpoint('runs/sst2/checkpoints/step-00000500.pb');
 * console.log(info.method, info.baseModel.nameOrPath, info.step, info.metrics);
 *
 * @throws {SoftpromptError} code `not_found` (no such file), `invalid_argument` (a folder), or
 *   `checkpoint_invalid` (not a checkpoint, a newer format, corrupt content).
 */
export async function inspectCheckpoint(path: string): Promise<CheckpointInfo> {
  const file = resolve(path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SoftpromptError('not_found', `checkpoint: no file at '${file}'`, { cause });
    if (code === 'EISDIR') throw new SoftpromptError('invalid_argument', `checkpoint: '${file}' is a directory, not a checkpoint file`, { cause });
    throw new SoftpromptError('storage', `checkpoint: cannot read '${file}' (${(cause as Error).message})`, { cause });
  }
  const invalid = (why: string, cause?: unknown) =>
    new SoftpromptError('checkpoint_invalid', `checkpoint '${file}' ${why}`, cause === undefined ? undefined : { cause });
  let msg: Checkpoint;
  try {
    msg = Checkpoint.decode(bytes);
  } catch (cause) {
    throw invalid(`is not a softprompt checkpoint (${(cause as Error).message})`, cause);
  }
  if (msg.formatVersion === 0 || !msg.method) throw invalid('is not a softprompt checkpoint (no format version)');
  if (msg.formatVersion > CHECKPOINT_FORMAT_VERSION) {
    throw invalid(`has format version ${msg.formatVersion}; this SDK reads up to ${CHECKPOINT_FORMAT_VERSION}: upgrade softprompt`);
  }
  if (contentSha256(bytes) !== msg.contentSha256) throw invalid('is corrupt: content sha256 does not match');
  let methodConfig: unknown;
  let modelSpec: unknown;
  try {
    methodConfig = JSON.parse(msg.methodConfigJson || '{}');
    modelSpec = msg.baseModel?.modelSpecJson ? JSON.parse(msg.baseModel.modelSpecJson) : null;
  } catch (cause) {
    throw invalid(`is corrupt: ${(cause as Error).message}`, cause);
  }
  const tensors: Record<string, { dtype: string; shape: number[] }> = {};
  for (const [name, t] of Object.entries(msg.tensors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    tensors[name] = describeTensor(name, t, invalid);
  }
  for (const [name, t] of Object.entries(msg.trainingState)) describeTensor(`training_state.${name}`, t, invalid);
  const bm = msg.baseModel;
  const v = msg.versions;
  return parseCheckpointInfo(
    {
      path: file,
      method: msg.method,
      method_config: methodConfig,
      base_model: {
        name_or_path: bm?.nameOrPath ?? '',
        model_type: bm?.modelType ?? '',
        fingerprint: bm?.fingerprint ?? '',
        hidden_size: Number(bm?.hiddenSize ?? 0n),
        num_layers: Number(bm?.numLayers ?? 0n),
        model_spec: modelSpec,
      },
      step: Number(msg.step),
      metrics: msg.metrics,
      versions: { softprompt: v?.softprompt ?? '', torch: v?.torch ?? '', transformers: v?.transformers ?? '', peft: v?.peft ?? '' },
      created_unix_ms: Number(msg.createdUnixMs),
      content_sha256: msg.contentSha256,
      resumable: msg.trainingStateJson !== '',
      tensors,
    },
    `checkpoint '${file}'`,
  );
}

/**
 * The sha256 the worker stores: over the message serialised with `content_sha256` empty. The worker
 * writes checkpoints deterministically, so that is the file's bytes without the field-12 record; the
 * other fields' bytes are hashed exactly as read (no re-encoding that could order map entries otherwise).
 */
function contentSha256(bytes: Uint8Array): string {
  const hash = createHash('sha256');
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [field, wireType] = reader.tag();
    reader.skip(wireType, field);
    if (field !== CONTENT_SHA256_FIELD) hash.update(bytes.subarray(start, reader.pos));
  }
  return hash.digest('hex');
}

function describeTensor(name: string, t: Tensor, invalid: (why: string) => Error): { dtype: string; shape: number[] } {
  const dtype = DTYPES.get(t.dtype);
  if (dtype === undefined) throw invalid(`is corrupt: tensor ${name} has an unknown dtype (${t.dtype})`);
  const shape = t.shape.map(Number);
  if (shape.some((d) => d < 0)) throw invalid(`is corrupt: tensor ${name} shape [${shape.join(', ')}] has a negative dimension`);
  const need = shape.reduce((a, b) => a * b, 1) * dtype[1];
  if (t.data.byteLength !== need) throw invalid(`is corrupt: tensor ${name} data is ${t.data.byteLength} bytes; shape [${shape.join(', ')}] of ${dtype[0]} needs ${need}`);
  return { dtype: dtype[0], shape };
}
