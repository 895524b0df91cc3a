/**
 * The TS codec against the shared vectors of test/vectors/wire.json (made by make_wire_vectors.py):
 * valid cases decode to the listed header and tensors and encode back byte for byte; invalid ones
 * are refused with a ProtocolError.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../ts/src/core/errors.js';
import { type DTypeName, tensorBytes } from '../../../ts/src/core/tensor.js';
import { type Message, type WireMap, decodeMessage, encodeMessage } from '../../../ts/src/internal/wire.js';

interface ValidCase {
  name: string;
  frames_hex: string[];
  header: { v: number; id: number; kind: Message['kind']; op: string; body: WireMap; tensors: unknown[] };
  tensors: { name: string; dtype: DTypeName; shape: number[]; data_hex: string }[];
}
interface InvalidCase {
  name: string;
  frames_hex: string[];
  error_code: string;
}

const vectors = JSON.parse(readFileSync(new URL('../../vectors/wire.json', import.meta.url), 'utf8')) as {
  protocol: number;
  valid: ValidCase[];
  invalid: InvalidCase[];
};

const fromHex = (hex: string) => Buffer.from(hex, 'hex');
const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

describe('wire codec vs shared vectors', () => {
  it('speaks the vectors protocol', () => expect(vectors.protocol).toBe(1));

  describe.each(vectors.valid.map((c) => [c.name, c] as const))('valid: %s', (_, c) => {
    it('decodes to the listed header and tensors', () => {
      const msg = decodeMessage(c.frames_hex.map(fromHex));
      const { tensors: _descs, ...header } = c.header;
      expect({ v: msg.v, id: msg.id, kind: msg.kind, op: msg.op, body: msg.body }).toEqual(header);
      expect(msg.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data_hex: toHex(tensorBytes(t)) }))).toEqual(c.tensors);
    });

    it('encodes byte for byte', () => {
      const decoded = decodeMessage(c.frames_hex.map(fromHex));
      const frames = encodeMessage({ ...decoded, body: c.header.body });
      expect(frames.map(toHex)).toEqual(c.frames_hex);
    });
  });

  it.each(vectors.invalid.map((c) => [c.name, c] as const))('invalid: %s', (_, c) => {
    expect(() => decodeMessage(c.frames_hex.map(fromHex))).toThrow(ProtocolError);
  });
});

describe('wire codec', () => {
  it('sends tensor memory without copying', () => {
    const data = new Float32Array(64);
    const frames = encodeMessage({ v: 1, id: 1, kind: 'request', op: 'echo', body: {}, tensors: [{ name: 'x', dtype: 'f32', shape: [64], data }] });
    expect(frames[1]!.buffer).toBe(data.buffer);
  });

  it('views received frames in place when aligned', () => {
    const frames = encodeMessage({ v: 1, id: 1, kind: 'reply', op: 'echo', body: {}, tensors: [{ name: 'x', dtype: 'f64', shape: [2], data: new Float64Array([1, 2]) }] });
    const msg = decodeMessage(frames);
    expect(msg.tensors[0]!.data.buffer).toBe(frames[1]!.buffer);
  });

  it('refuses a header over 1 MiB', () => {
    const body = { text: 'x'.repeat(1 << 20) };
    expect(() => encodeMessage({ v: 1, id: 1, kind: 'request', op: 'big', body, tensors: [] })).toThrow(/Send large data as tensors/);
  });
});
