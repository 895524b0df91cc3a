import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { MAX_ROW_BYTES, chunkRows, uploadData } from '../../../ts/src/jobs/data.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';
import { FakeRpc } from './fake-rpc.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const row = (i: number) => ({ input: `row ${String(i).padStart(3, "0")}`, target: 'x'.repeat(80) }); // ~100 JSON bytes

describe('chunkRows', () => {
  it('groups rows up to the byte budget, keeping order', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => row(i));
    const size = Buffer.byteLength(JSON.stringify(row(0)));
    const chunks = await collect(chunkRows(rows, size * 10, 'data.train.rows'));
    expect(chunks.map((c) => c.length)).toEqual([10, 10, 10, 10, 10]);
    expect(chunks.flat()).toEqual(rows);
  });

  it('reads sync and async iterables', async () => {
    function* gen() {
      for (let i = 0; i < 3; i++) yield row(i);
    }
    async function* agen() {
      for (let i = 0; i < 3; i++) yield row(i);
    }
    expect((await collect(chunkRows(gen(), 1 << 20, 'r'))).flat()).toHaveLength(3);
    expect((await collect(chunkRows(agen(), 1 << 20, 'r'))).flat()).toHaveLength(3);
  });

  it('sends a row bigger than the chunk alone, and refuses one over the message limit by index', async () => {
    const big = { input: 'y'.repeat(5000), target: '' };
    const chunks = await collect(chunkRows([row(0), big, row(1)], 1000, 'r'));
    expect(chunks.map((c) => c.length)).toEqual([1, 1, 1]);
    const huge = { input: 'z'.repeat(MAX_ROW_BYTES), target: '' };
    await expect(collect(chunkRows([row(0), huge], 1000, 'data.train.rows'))).rejects.toThrow(/^data\.train\.rows\[1\]: \d+ bytes; .*JSONL/);
    await expect(collect(chunkRows([{ n: 1n }], 1000, 'data.eval.rows'))).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('uploadData', () => {
  it('opens a dataset per rows source, appends chunks, passes files through, and closes', async () => {
    const fake = new FakeRpc();
    const rows = Array.from({ length: 30 }, (_, i) => row(i));
    const up = await uploadData(
      fake.rpc,
      { train: { rows }, eval: { path: '/abs/eval.jsonl' }, evalFraction: 0, onBadRow: 'skip' },
      { signal: new AbortController().signal, chunkBytes: 1000 },
    );
    expect(up.body).toEqual({ train: { dataset: 'ds-1' }, eval: { path: '/abs/eval.jsonl' }, on_bad_row: 'skip' });
    const appends = fake.sent.filter((s) => s.op === 'data_append');
    expect(appends.length).toBeGreaterThan(2);
    expect(appends.flatMap((s) => s.body['rows'] as unknown[])).toEqual(rows);
    expect(fake.sent[0]!.body['dataset']).toMatch(/^data\.train\.rows@[0-9a-f]{8}$/);
    await up.close();
    expect(fake.sent.at(-1)).toEqual({ op: 'data_close', body: { dataset: 'ds-1' } });
  });

  it('closes what it opened when an upload fails', async () => {
    const fake = new FakeRpc((op) => {
      if (op === 'data_append') throw new Error('boom');
      return op === 'data_open' ? { dataset: 'ds-9' } : ({} as WireMap);
    });
    await expect(
      uploadData(fake.rpc, { train: { rows: [row(0)] }, evalFraction: 0.1, onBadRow: 'fail' }, { signal: new AbortController().signal, chunkBytes: 1000 }),
    ).rejects.toThrow('boom');
    expect(fake.ops()).toEqual(['data_open', 'data_append', 'data_close']);
  });

  it('sends eval_fraction only when set', async () => {
    const fake = new FakeRpc();
    const up = await uploadData(fake.rpc, { train: { path: '/t.jsonl' }, evalFraction: 0.25, onBadRow: 'fail' }, { signal: new AbortController().signal, chunkBytes: 1 });
    expect(up.body).toEqual({ train: { path: '/t.jsonl' }, eval_fraction: 0.25, on_bad_row: 'fail' });
    expect(fake.sent).toEqual([]);
  });
});
