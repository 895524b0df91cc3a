/**
 * Tensors as they cross the SDK boundary: a dtype, a shape and a typed-array view over the elements.
 *
 * The SDK never copies tensor data when it can avoid it: outgoing data is handed to ZeroMQ as-is, and
 * incoming data is viewed in place in the received frame (copied only when the frame is misaligned for
 * the element type). Half-precision types have no native JS array in Node 20, so `f16` and `bf16`
 * carry their raw 16-bit patterns in a `Uint16Array`; use {@link bf16ToFloat32} / {@link float32ToBf16}
 * (and the `f16` twins) to convert.
 */
import { DType, dTypeToJSON } from '../gen/softprompt/v1/tensor.js';
import { ValidationError } from './errors.js';

/** Element types, named as on the wire (the `DType` enum of `tensor.proto`, lower-cased, no prefix). */
export type DTypeName = 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

/** The typed array that holds each dtype's elements. */
export interface TensorArrayMap {
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  f64: Float64Array;
  i64: BigInt64Array;
  i32: Int32Array;
  i16: Int16Array;
  i8: Int8Array;
  u8: Uint8Array;
  bool: Uint8Array;
}

/**
 * A dense, C-contiguous tensor. `data.length` must equal the product of `shape` (1 for a scalar,
 * whose shape is `[]`). Data passed to a call is sent without copying: do not mutate it until the
 * call has settled.
 */
export interface Tensor<D extends DTypeName = DTypeName> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TensorArrayMap[D];
}

/** Tensors by name, as requests take them and replies return them. */
export type TensorMap = Readonly<Record<string, Tensor>>;

type ArrayCtor = {
  readonly BYTES_PER_ELEMENT: number;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorArrayMap[DTypeName];
  new (length: number): TensorArrayMap[DTypeName];
};

const ARRAY_CTORS: { readonly [D in DTypeName]: ArrayCtor } = {
  f32: Float32Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  f64: Float64Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i16: Int16Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

/** Every dtype, in `DType` enum order; derived from the generated enum so there is one source. */
export const DTYPES: readonly DTypeName[] = Object.values(DType)
  .filter((v): v is DType => typeof v === 'number' && v > 0)
  .map((v) => dTypeToJSON(v).slice('DTYPE_'.length).toLowerCase() as DTypeName);

/** True when `name` is a dtype the wire protocol knows. */
export function isDTypeName(name: unknown): name is DTypeName {
  return typeof name === 'string' && Object.hasOwn(ARRAY_CTORS, name);
}

/** Bytes per element (`bool` is one byte). */
export function itemSize(dtype: DTypeName): number {
  return ARRAY_CTORS[dtype].BYTES_PER_ELEMENT;
}

/** Number of elements for a shape: the product of its dimensions, 1 for a scalar. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Makes a tensor, checking that `data` is the right array type and length for `dtype` and `shape`.
 *
 * @example
 * const x = tensor('f32', [2, 3], new Float32Array(6));
 */
export function tensor<D extends DTypeName>(dtype: D, shape: readonly number[], data: TensorArrayMap[D]): Tensor<D> {
  checkTensor('tensor', { dtype, shape, data });
  return { dtype, shape: [...shape], data };
}

/** Throws {@link ValidationError} naming `path` when `t` is not a well-formed tensor. */
export function checkTensor(path: string, t: Tensor): void {
  if (!isDTypeName(t.dtype)) throw new ValidationError(`${path}.dtype: unknown dtype ${JSON.stringify(t.dtype)}`);
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ValidationError(`${path}.shape: dimensions must be non-negative integers, got [${t.shape.join(', ')}]`);
    }
  }
  const ctor = ARRAY_CTORS[t.dtype];
  if (!(t.data instanceof ctor)) {
    throw new ValidationError(`${path}.data: dtype ${t.dtype} needs a ${ctor.name}, got ${t.data?.constructor?.name ?? typeof t.data}`);
  }
  const n = numel(t.shape);
  if (t.data.length !== n) {
    throw new ValidationError(`${path}.data: shape [${t.shape.join(', ')}] needs ${n} elements, got ${t.data.length}`);
  }
}

/** The tensor's bytes as a `Uint8Array` view over the same memory (no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * Views `bytes` as the typed array for `dtype`, without copying when `bytes.byteOffset` is aligned to
 * the element size; otherwise copies into a fresh, aligned buffer. The caller checks the length.
 */
export function viewAs<D extends DTypeName>(dtype: D, bytes: Uint8Array): TensorArrayMap[D] {
  const ctor = ARRAY_CTORS[dtype];
  const size = ctor.BYTES_PER_ELEMENT;
  const length = bytes.byteLength / size;
  if (bytes.byteOffset % size === 0) {
    return new ctor(bytes.buffer, bytes.byteOffset, length) as TensorArrayMap[D];
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, length) as TensorArrayMap[D];
}

// --- half-precision conversions -------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bit patterns → float32 values (exact: bf16 is the top half of a float32). */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

/** float32 values → bf16 bit patterns, rounding to nearest even (NaN stays a quiet NaN). */
export function float32ToBf16(values: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const x = u32[0]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040; // NaN: keep sign and top payload, force quiet
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** IEEE f16 bit patterns → float32 values (exact). */
export function f16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 0x1f) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** float32 values → IEEE f16 bit patterns, rounding to nearest even; overflow becomes ±Infinity. */
export function float32ToF16(values: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign; // underflows to ±0
        continue;
      }
      mant |= 0x800000; // implicit leading one, then shift into the subnormal range
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = mant & ((1 << shift) - 1);
      let m = mant >>> shift;
      if (rest > half || (rest === half && m & 1)) m++;
      out[i] = sign | m;
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: correct
      out[i] = sign | h;
    }
  }
  return out;
}
