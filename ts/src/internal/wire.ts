/**
 * Frames ⇄ messages, exactly as `proto/WIRE.md` describes (version 1).
 *
 * A message is a multipart ZeroMQ message: frame 0 is a MessagePack header
 * `{v, id, kind, op, body, tensors: [{name, dtype, shape}, ...]}` (at most 1 MiB), frames 1..n hold
 * each tensor's raw little-endian bytes, in descriptor order. Tensor bytes never go through
 * MessagePack: encoding hands the caller's memory to ZeroMQ as `Buffer` views, decoding views the
 * received frames in place (copying only when a frame is misaligned for its element type).
 */
import { endianness } from 'node:os';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { ProtocolError, ValidationError } from '../core/errors.js';
import { headByteOf, isIntegerHead } from './msgpack-scan.js';
import { type DTypeName, type Tensor, isDTypeName, itemSize, numel, viewAs } from '../core/tensor.js';

/** The protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;
/** Largest header frame either side accepts. */
export const MAX_HEADER_BYTES = 1 << 20;
/**
 * Largest message (header plus tensor frames), and largest tensor frame, the worker accepts: its
 * `--max-message-bytes` default (protocol.py `Limits`, 2 GiB). The SDK refuses bigger ones before
 * sending: the worker would read them whole only to answer `too_large`.
 */
export const MAX_MESSAGE_BYTES = 2 ** 31;

export type MessageKind = 'request' | 'reply' | 'event' | 'error';
const HEADER_KEYS = ['v', 'id', 'kind', 'op', 'body', 'tensors'] as const;
const TENSOR_KEYS = ['name', 'dtype', 'shape'] as const;
const MAX_RANK = 32;
const KINDS: ReadonlySet<string> = new Set<MessageKind>(['request', 'reply', 'event', 'error']);

/** A MessagePack map: an op's body. Values are MessagePack values (no tensors, no undefined). */
export type WireMap = { [key: string]: WireValue };
/** Any value MessagePack carries. */
export type WireValue = null | boolean | number | string | Uint8Array | WireValue[] | WireMap;

/** A tensor with its name inside one message. */
export interface NamedTensor extends Tensor {
  readonly name: string;
}

/** One decoded (or to-be-encoded) message. */
export interface Message {
  readonly v: number;
  readonly id: number;
  readonly kind: MessageKind;
  readonly op: string;
  readonly body: WireMap;
  readonly tensors: readonly NamedTensor[];
}

if (endianness() !== 'LE') {
  // Typed-array views use host byte order and the wire is little-endian.
  throw new Error('softprompt needs a little-endian host');
}

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/**
 * Encodes a message into frames. Tensor frames are views over the tensors' memory (no copy). Throws
 * {@link ValidationError} naming the limit and the size for a header over {@link MAX_HEADER_BYTES} or
 * a message over `maxMessageBytes`, before anything is sent.
 */
export function encodeMessage(msg: Message, maxMessageBytes: number = MAX_MESSAGE_BYTES): Buffer[] {
  let header: Uint8Array;
  try {
    header = encoder.encode({
      v: msg.v,
      id: msg.id,
      kind: msg.kind,
      op: msg.op,
      body: msg.body,
      tensors: msg.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    });
  } catch (cause) {
    // A value MessagePack has no encoding for (a function, a symbol, a bigint): the caller's input.
    throw new ValidationError(`${msg.op} arguments cannot be sent: ${(cause as Error).message}`, undefined, { cause });
  }
  if (header.byteLength > MAX_HEADER_BYTES) {
    throw new ValidationError(`${msg.op} header is ${header.byteLength} bytes; the limit is ${MAX_HEADER_BYTES}. Send large data as tensors.`);
  }
  let total = header.byteLength;
  for (const t of msg.tensors) total += t.data.byteLength;
  if (total > maxMessageBytes) {
    const big = msg.tensors.find((t) => t.data.byteLength > maxMessageBytes);
    const what = big ? `tensor ${JSON.stringify(big.name)} is ${big.data.byteLength} bytes` : `message is ${total} bytes`;
    throw new ValidationError(`${msg.op}: ${what}; the limit is ${maxMessageBytes} (the worker's --max-message-bytes). Send it in parts.`);
  }
  const frames: Buffer[] = [Buffer.from(header.buffer, header.byteOffset, header.byteLength)];
  for (const t of msg.tensors) frames.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return frames;
}

/**
 * Decodes frames into a message, checking every rule of WIRE.md. Throws {@link ProtocolError} with
 * the reason on anything malformed; the error's `id` is the request id when it could be read, else 0.
 */
export function decodeMessage(frames: readonly Uint8Array[]): Message {
  const [head, ...data] = frames;
  if (head === undefined) throw new ProtocolError('empty message (no header frame)');
  if (head.byteLength > MAX_HEADER_BYTES) throw new ProtocolError(`header frame is ${head.byteLength} bytes; the limit is ${MAX_HEADER_BYTES}`);
  let header: unknown;
  try {
    header = decoder.decode(head);
  } catch (cause) {
    throw new ProtocolError('header is not valid MessagePack', { cause });
  }
  if (!isMap(header)) throw new ProtocolError('header is not a map');
  // The version first: another version may well have other fields.
  if (header.v !== PROTOCOL_VERSION) throw new ProtocolError(`header.v: expected ${PROTOCOL_VERSION}, got ${show(header.v)}`);
  checkKeys('header', header, HEADER_KEYS);
  const { v, id, kind, op, body, tensors } = header;
  if (typeof kind !== 'string' || !KINDS.has(kind)) throw new ProtocolError(`header.kind: unknown kind ${show(kind)}`);
  // id 0 is reserved for errors about messages whose id could not be read.
  const minId = kind === 'error' ? 0 : 1;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < minId || (mayHoldFloat(head) && !isIntegerHead(headByteOf(head, 'id')))) {
    throw new ProtocolError(`header.id: expected an integer in [${minId}, 2^53), got ${show(id)}`);
  }
  if (typeof op !== 'string') throw new ProtocolError(`header.op: expected a string, got ${show(op)}`);
  if (!isMap(body)) throw new ProtocolError('header.body: expected a map');
  if (!Array.isArray(tensors)) throw new ProtocolError('header.tensors: expected an array');
  if (tensors.length !== data.length) {
    throw new ProtocolError(`header.tensors names ${tensors.length} tensors but ${data.length} data frames arrived`);
  }
  const names = new Set<string>();
  const out = tensors.map((desc, i) => {
    const t = decodeTensor(desc, data[i]!, i);
    if (names.has(t.name)) throw new ProtocolError(`header.tensors[${i}].name: duplicate name ${show(t.name)}`);
    names.add(t.name);
    return t;
  });
  return { v, id, kind: kind as MessageKind, op, body: body as WireMap, tensors: out };
}

function decodeTensor(desc: unknown, bytes: Uint8Array, i: number): NamedTensor {
  const at = `header.tensors[${i}]`;
  if (!isMap(desc)) throw new ProtocolError(`${at}: expected a map`);
  checkKeys(at, desc, TENSOR_KEYS);
  const { name, dtype, shape } = desc;
  if (typeof name !== 'string') throw new ProtocolError(`${at}.name: expected a string, got ${show(name)}`);
  if (!isDTypeName(dtype)) throw new ProtocolError(`${at}.dtype: unknown dtype ${show(dtype)}`);
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new ProtocolError(`${at}.shape: expected an array of non-negative integers, got ${show(shape)}`);
  }
  const dims = shape as number[];
  const expected = numel(dims) * itemSize(dtype);
  if (bytes.byteLength !== expected) {
    throw new ProtocolError(`${at}: ${dtype}[${dims.join(', ')}] needs ${expected} bytes, frame has ${bytes.byteLength}`);
  }
  return { name, dtype: dtype as DTypeName, shape: dims, data: viewAs(dtype, bytes) };
}

/** A header without a float head byte anywhere cannot carry a float id (skips the scan on the hot path). */
function mayHoldFloat(head: Uint8Array): boolean {
  return head.includes(0xcb) || head.includes(0xca);
}

function checkKeys(at: string, map: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of keys) if (!(k in map)) throw new ProtocolError(`${at}: missing field ${show(k)}`);
  for (const k of Object.keys(map)) if (!keys.includes(k)) throw new ProtocolError(`${at}: unknown field ${show(k)}`);
}

function isMap(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

function show(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}
