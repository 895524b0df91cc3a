import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import {
  DTYPES, bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, itemSize, tensor, viewAs,
} from '../../../ts/src/core/tensor.js';

describe('tensor', () => {
  it('lists dtypes from the proto enum', () => {
    expect(DTYPES).toEqual(['f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'i16', 'i8', 'u8', 'bool']);
    expect(DTYPES.map(itemSize)).toEqual([4, 2, 2, 8, 8, 4, 2, 1, 1, 1]);
  });

  it('checks array type and length against dtype and shape', () => {
    expect(tensor('f32', [2, 3], new Float32Array(6)).shape).toEqual([2, 3]);
    expect(tensor('f32', [], new Float32Array(1)).shape).toEqual([]);
    expect(() => tensor('f32', [2, 3], new Float32Array(5))).toThrow('tensor.data: shape [2, 3] needs 6 elements, got 5');
    // @ts-expect-error wrong array type for the dtype
    expect(() => tensor('i64', [1], new Int32Array(1))).toThrow(ValidationError);
    expect(() => tensor('u8', [-1], new Uint8Array(0))).toThrow('non-negative integers');
  });

  it('views aligned bytes without copying and copies misaligned ones', () => {
    const buf = new Uint8Array(17);
    const aligned = viewAs('f32', buf.subarray(4, 12));
    expect(aligned.buffer).toBe(buf.buffer);
    const misaligned = viewAs('f32', buf.subarray(1, 9));
    expect(misaligned.buffer).not.toBe(buf.buffer);
    expect(misaligned.length).toBe(2);
  });

  it('bf16 round-trips exactly and rounds to nearest even', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToBf16(bf16ToFloat32(bits));
    const notNaN = (i: number) => !((i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0);
    expect(back.filter((_, i) => notNaN(i))).toEqual(bits.filter((_, i) => notNaN(i)));
    expect(float32ToBf16([1 + 2 ** -8])[0]).toBe(0x3f80); // tie → even
    expect(float32ToBf16([1 + 3 * 2 ** -8])[0]).toBe(0x3f82); // tie → even (up)
    expect(Number.isNaN(bf16ToFloat32(float32ToBf16([NaN]))[0])).toBe(true);
  });

  it('f16 round-trips every finite value and handles subnormals and overflow', () => {
    const notNaN = (i: number) => !((i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0);
    const bits = new Uint16Array(65536).map((_, i) => i).filter(notNaN);
    expect(float32ToF16(f16ToFloat32(bits))).toEqual(bits);
    expect(float32ToF16([65520])[0]).toBe(0x7c00); // rounds up to infinity
    expect(float32ToF16([2 ** -25])[0]).toBe(0); // tie → even (zero)
    expect(f16ToFloat32(new Uint16Array([0x3c00, 0xc000, 0x0001]))).toEqual(new Float32Array([1, -2, 2 ** -24]));
  });
});
