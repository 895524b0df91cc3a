/**
 * The client against the real worker: handshake, control ops, bit-exact tensor round trips.
 */
import { randomFillSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { AbortError, ValidationError } from '../../../ts/src/core/errors.js';
import { type DTypeName, type Tensor, type TensorArrayMap, itemSize, tensor } from '../../../ts/src/core/tensor.js';
import { bytesOf, testWorkerOptions } from '../helpers.js';

const MiB = 1 << 20;

function random<D extends DTypeName>(dtype: D, bytes: number): Tensor<D> {
  const n = bytes / itemSize(dtype);
  const buf = new Uint8Array(bytes);
  // randomFillSync is capped at 2^31-1 bytes per call and 64 KiB per getRandomValues; fine here.
  randomFillSync(buf);
  const ctor = { f32: Float32Array, bf16: Uint16Array, i64: BigInt64Array, f16: Uint16Array, f64: Float64Array, i32: Int32Array, i16: Int16Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array }[dtype];
  const data = new ctor(buf.buffer, 0, n) as TensorArrayMap[D];
  if (dtype === 'bool') (data as Uint8Array).forEach((v, i, a) => (a[i] = v & 1));
  return tensor(dtype, [n], data);
}

describe('Softprompt with the real worker', () => {
  let sp: Softprompt;
  beforeAll(async () => {
    sp = await Softprompt.start(testWorkerOptions());
  });
  afterAll(async () => {
    await sp?.close();
  });

  it('shakes hands and reports capabilities', async () => {
    expect(sp.capabilities.torch).toMatch(/^\d+\.\d+/);
    expect(sp.capabilities.devices).toContain('cpu');
    expect(sp.workerVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(sp.workerPid).toBeGreaterThan(0);
    await expect(sp.info()).resolves.toEqual(sp.capabilities);
  });

  it('reports the compute thread\'s health: idle and beating', async () => {
    const health = await sp.health();
    expect(health).toMatchObject({ state: 'idle', op: null, busyMs: 0, stuck: false });
    expect(health.sinceBeatMs).toBeLessThan(5_000);
  });

  it('answers 1,000 sequential pings', async () => {
    for (let i = 0; i < 1000; i++) await sp.ping();
  });

  it.each([0, 8, 1024, MiB, 64 * MiB])('echoes random f32, bf16 and i64 tensors of %i bytes bit for bit', async (bytes) => {
    const sent = { a: random('f32', bytes), b: random('bf16', bytes), c: random('i64', bytes) };
    const back = await sp.echo(sent);
    for (const [name, t] of Object.entries(sent)) {
      expect(back[name]!.dtype).toBe(t.dtype);
      expect(back[name]!.shape).toEqual(t.shape);
      expect(bytesOf(back[name]!.data).equals(bytesOf(t.data))).toBe(true);
    }
  });

  it('echoes every other dtype and a scalar', async () => {
    const sent = {
      h: random('f16', 64), d: random('f64', 64), i: random('i32', 64), s: random('i16', 64),
      b: random('i8', 64), u: random('u8', 64), m: random('bool', 64),
      scalar: tensor('f32', [], new Float32Array([Math.PI])),
    };
    const back = await sp.echo(sent);
    for (const [name, t] of Object.entries(sent)) expect(bytesOf(back[name]!.data).equals(bytesOf(t.data))).toBe(true);
    expect(back['scalar']!.shape).toEqual([]);
  });

  it('refuses a malformed tensor before sending it', async () => {
    const bad = { x: { dtype: 'f32', shape: [3], data: new Float32Array(2) } as Tensor };
    await expect(sp.echo(bad)).rejects.toThrow(ValidationError);
    await expect(sp.echo(bad)).rejects.toThrow('tensors.x.data: shape [3] needs 3 elements, got 2');
  });

  it('rejects an already-aborted call with AbortError', async () => {
    const controller = new AbortController();
    controller.abort(new Error('user'));
    await expect(sp.ping({ signal: controller.signal })).rejects.toBeInstanceOf(AbortError);
  });
});
