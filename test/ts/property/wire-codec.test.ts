/**
 * Property tests of the TS wire codec (ts/src/internal/wire.ts, spec: proto/WIRE.md).
 *
 * - decode(encode(m)) equals m for random valid messages: every dtype, ranks 0..4 with zero-sized
 *   dimensions, misaligned tensor views, bodies of every MessagePack type, ids across the range.
 * - Random bytes, byte-level mutations of valid frames and corrupted header fields throw
 *   ProtocolError (never another exception); a corrupted field is named in the message.
 * - The SDK refuses to send a message over the worker's limit (ValidationError naming the limit and
 *   the size) before anything is queued; the limit is the worker's default --max-message-bytes.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encode as msgpackEncode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError, ValidationError } from '../../../ts/src/core/errors.js';
import { DTYPES, type DTypeName, itemSize, numel, tensorBytes, viewAs } from '../../../ts/src/core/tensor.js';
import { Transport } from '../../../ts/src/internal/transport.js';
import { MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, type Message, type MessageKind, type NamedTensor, type WireMap, type WireValue, decodeMessage, encodeMessage } from '../../../ts/src/internal/wire.js';
import { bytesOf, quietLogger, venvPython } from '../helpers.js';

const RUNS = { numRuns: 300, seed: 8675309 };
const KINDS: MessageKind[] = ['request', 'reply', 'event', 'error'];

const key = fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__');
const scalar: fc.Arbitrary<WireValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double().map((d) => (Object.is(d, -0) ? 0 : d)), // MessagePack has no integer -0
  fc.string({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 8 }),
);
const value: fc.Arbitrary<WireValue> = fc.letrec<{ v: WireValue }>((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 3 })),
})).v;
const body: fc.Arbitrary<WireMap> = fc.dictionary(key, value, { maxKeys: 5 });

/** A tensor of `dtype`, random shape and bytes, viewed at a random (possibly misaligned) offset. */
const tensor = (name: string): fc.Arbitrary<NamedTensor> =>
  fc
    .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }), pad: fc.integer({ min: 0, max: 7 }) })
    .chain(({ dtype, shape, pad }) =>
      fc.uint8Array({ minLength: numel(shape) * itemSize(dtype), maxLength: numel(shape) * itemSize(dtype) }).map((bytes) => {
        const size = itemSize(dtype);
        const buffer = new Uint8Array(pad * size + bytes.byteLength); // aligned for the dtype at `pad` elements
        buffer.set(dtype === 'bool' ? bytes.map((b) => b & 1) : bytes, pad * size);
        return { name, dtype, shape, data: viewAs(dtype, buffer.subarray(pad * size)) } as NamedTensor;
      }),
    );

const message: fc.Arbitrary<Message> = fc
  .record({ kind: fc.constantFrom(...KINDS), op: fc.string({ maxLength: 8 }), body, names: fc.uniqueArray(fc.string({ maxLength: 4 }), { maxLength: 4 }) })
  .chain(({ kind, op, body, names }) =>
    fc.record({
      v: fc.constant(1),
      id: fc.integer({ min: kind === 'error' ? 0 : 1, max: Number.MAX_SAFE_INTEGER }),
      kind: fc.constant(kind),
      op: fc.constant(op),
      body: fc.constant(body),
      tensors: names.length ? fc.tuple(...names.map(tensor)) : fc.constant([]),
    }),
  );

/** Decodes, allowing only a message or a ProtocolError. */
function decodeOrProtocolError(frames: Uint8Array[]): ProtocolError | undefined {
  try {
    decodeMessage(frames);
    return undefined;
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw new Error(`decodeMessage threw ${String(error)}, not a ProtocolError`, { cause: error });
    expect(error.message.length).toBeGreaterThan(0);
    return error;
  }
}

/** Own copies of `frames`, each starting `offsets[i] % 8` bytes into its buffer (misaligned views are copied on decode). */
const copy = (frames: Buffer[], offsets: readonly number[] = []) =>
  frames.map((f, i) => {
    const at = (offsets[i] ?? 0) % 8;
    const out = new Uint8Array(at + f.byteLength).subarray(at);
    out.set(f);
    return out;
  });

describe('wire codec properties', () => {
  it('decode inverts encode for every dtype, shape and body', () => {
    fc.assert(
      fc.property(message, fc.array(fc.nat(), { maxLength: 5 }), (msg, offsets) => {
        const frames = encodeMessage(msg);
        const got = decodeMessage(copy(frames, offsets));
        expect({ v: got.v, id: got.id, kind: got.kind, op: got.op, body: got.body }).toEqual({ v: 1, id: msg.id, kind: msg.kind, op: msg.op, body: msg.body });
        expect(got.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(msg.tensors.map((t) => [t.name, t.dtype, t.shape]));
        got.tensors.forEach((t, i) => {
          expect(t.data.constructor).toBe(msg.tensors[i]!.data.constructor);
          expect(bytesOf(t.data).equals(bytesOf(msg.tensors[i]!.data))).toBe(true);
        });
        expect(Buffer.compare(encodeMessage(got)[0]!, frames[0]!)).toBe(0); // canonical header bytes
      }),
      RUNS,
    );
  });

  it('random bytes give a ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }), (frames) => {
        decodeOrProtocolError(frames);
      }),
      RUNS,
    );
  });

  it('mutated frames of a valid message give a message or a ProtocolError', () => {
    const edit = fc.record({
      op: fc.constantFrom('flip', 'insert', 'delete', 'truncate', 'drop', 'add'),
      frame: fc.nat(),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
    });
    fc.assert(
      fc.property(message, fc.array(edit, { minLength: 1, maxLength: 4 }), (msg, edits) => {
        const frames = copy(encodeMessage(msg)).map((f) => [...f]);
        for (const e of edits) {
          const f = frames[e.frame % frames.length]!;
          const at = f.length ? e.at % f.length : 0;
          if (e.op === 'flip' && f.length) f[at]! ^= e.bytes[0]! | 1;
          else if (e.op === 'insert') f.splice(at, 0, ...e.bytes);
          else if (e.op === 'delete') f.splice(at, 1);
          else if (e.op === 'truncate') f.length = at;
          else if (e.op === 'drop' && frames.length > 1) frames.splice(e.frame % frames.length, 1);
          else if (e.op === 'add') frames.push([...e.bytes]);
        }
        decodeOrProtocolError(frames.map((f) => Uint8Array.from(f)));
      }),
      RUNS,
    );
  });

  const wrong = fc.oneof(
    fc.constantFrom(null, true, -1, 1.5, 2 ** 53, '', 'x', [], {}, [1, 2], { a: 1 }, new Uint8Array([1])),
    fc.string({ maxLength: 4 }),
    fc.integer(),
  );

  it('a corrupted header field is named', () => {
    fc.assert(
      fc.property(message, fc.constantFrom('v', 'id', 'kind', 'op', 'body', 'tensors'), wrong, (msg, field, v) => {
        const header: Record<string, unknown> = { v: 1, id: msg.id, kind: msg.kind, op: msg.op, body: msg.body, tensors: msg.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })) };
        header[field] = v;
        const frames = [msgpackEncode(header), ...msg.tensors.map(tensorBytes)].map((f) => new Uint8Array(f));
        const error = decodeOrProtocolError(frames);
        if (error === undefined) {
          // Accepted only when the value is valid for the field after all.
          expect(['op', 'body', 'tensors', 'id', 'kind']).toContain(field);
          return;
        }
        expect(error.message).toContain(`header.${field}`);
      }),
      RUNS,
    );
  });

  it('refuses to encode exactly the messages over the limit, naming limit and size', () => {
    fc.assert(
      fc.property(message, fc.integer({ min: 1, max: 2048 }), (msg, limit) => {
        const total = encodeMessage(msg).reduce((n, f) => n + f.byteLength, 0);
        if (total <= limit) {
          expect(() => encodeMessage(msg, limit)).not.toThrow();
          return;
        }
        expect(() => encodeMessage(msg, limit)).toThrow(ValidationError);
        expect(() => encodeMessage(msg, limit)).toThrow(new RegExp(`is \\d+ bytes; the limit is ${limit} `));
      }),
      RUNS,
    );
  });
});

describe('message size limits', () => {
  it("is the worker's default --max-message-bytes", () => {
    const out = execFileSync(venvPython, ['-c', 'from softprompt_worker.serving.protocol import Limits; l = Limits(); print(l.max_total_bytes, l.max_frame_bytes, l.max_header_bytes)'], {
      env: { ...process.env, PYTHONPATH: fileURLToPath(new URL('../../../python', import.meta.url)) },
      encoding: 'utf8',
    });
    expect(out.trim().split(' ').map(Number)).toEqual([MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, MAX_HEADER_BYTES]);
  });

  it('the SDK refuses a 3 GiB message before queueing it', () => {
    // Three views of one zero-filled 1 GiB buffer: the pages are never touched, so this costs no memory.
    const big = new Uint8Array(2 ** 30);
    const tensors: NamedTensor[] = ['a', 'b', 'c'].map((name) => ({ name, dtype: 'u8' as DTypeName, shape: [big.length], data: big }));
    const transport = Transport.connect('ipc:///nonexistent/softprompt-k2.sock', quietLogger());
    try {
      const handlers = { onEvent: () => {}, onReply: () => {}, onError: () => {} };
      expect(() => transport.send('echo', {}, tensors, handlers)).toThrow(ValidationError);
      expect(() => transport.send('echo', {}, tensors, handlers)).toThrow(`the limit is ${MAX_MESSAGE_BYTES} (the worker's --max-message-bytes)`);
      expect(transport.pendingCount).toBe(0);
      expect(() => transport.send('echo', { text: 'x'.repeat(MAX_HEADER_BYTES) }, [], handlers)).toThrow(ValidationError);
    } finally {
      transport.close(new Error('test over'));
    }
  });
});
