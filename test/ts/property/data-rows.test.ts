/**
 * Property tests of rows sent from TS (`{ rows }` data sources), the TS half of "no row silently
 * dropped or changed": chunkRows hands on every row, in order, in chunks of at most `chunkBytes` (a
 * larger row travels alone); a row that is not JSON data (a Date, Map, Set, typed array, function,
 * symbol, bigint, class instance, a cycle) is refused with a ValidationError naming its index and
 * field before its chunk is sent, instead of being mangled by the encoder or failing as a bare Error.
 * Rows that are JSON data but wrong for the task (a number, a missing field) travel as they are: the
 * worker reports them by index (test/python/property/test_jsonl_data.py).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SoftpromptError, ValidationError } from '../../../ts/src/core/errors.js';
import { encodeMessage } from '../../../ts/src/internal/wire.js';
import { type JsonRow, chunkRows } from '../../../ts/src/jobs/data.js';

const RUNS = { numRuns: 300, seed: 4242 };

const json: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 12 }),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 4 }).filter((k) => k !== '__proto__'), tie('v'), { maxKeys: 3 }),
  ),
})).v;

class Custom {
  readonly x = 1;
}
/** Values that are not JSON data, with the type the error must name. */
const notJson = fc.constantFrom<[unknown, string]>(
  [new Date(0), 'Date'],
  [new Map([['a', 1]]), 'Map'],
  [new Set([1]), 'Set'],
  [new Float32Array(2), 'Float32Array'],
  [new Uint8Array(2), 'Uint8Array'],
  [() => 1, 'function'],
  [Symbol('s'), 'symbol'],
  [10n, 'bigint'],
  [new Custom(), 'Custom'],
);

type Case = { rows: unknown[]; bad: { index: number; path: string; type: string } | undefined };

/** Rows of JSON data; sometimes one row has a non-JSON value at the top or one level down. */
const cases: fc.Arbitrary<Case> = fc
  .record({
    rows: fc.array(fc.oneof(fc.dictionary(fc.constantFrom('input', 'target', 'label', 'x'), json, { maxKeys: 4 }), json), { maxLength: 20 }),
    bad: fc.option(fc.record({ at: fc.nat(), where: fc.constantFrom('field', 'nested', 'row'), value: notJson })),
  })
  .map(({ rows, bad }) => {
    if (bad === null || rows.length === 0) return { rows, bad: undefined };
    const index = bad.at % rows.length;
    const [value, type] = bad.value;
    const row = bad.where === 'row' ? value : bad.where === 'field' ? { input: 'a', x: value } : { input: 'a', x: [1, { y: value }] };
    const copy = [...rows];
    copy[index] = row;
    const path = bad.where === 'row' ? '' : bad.where === 'field' ? '.x' : '.x[1].y';
    return { rows: copy, bad: { index, path, type } };
  });

async function run(rows: unknown[], chunkBytes: number): Promise<{ chunks: JsonRow[][]; error?: unknown }> {
  const chunks: JsonRow[][] = [];
  try {
    for await (const chunk of chunkRows(rows as JsonRow[], chunkBytes, 'data.train.rows')) chunks.push(chunk);
    return { chunks };
  } catch (error) {
    return { chunks, error };
  }
}

const size = (row: unknown) => Buffer.byteLength(JSON.stringify(row) ?? 'null');

describe('rows from TS', () => {
  it('are all handed on in order, or refused at the first row that is not JSON data', async () => {
    await fc.assert(
      fc.asyncProperty(cases, fc.integer({ min: 1, max: 400 }), async ({ rows, bad }, chunkBytes) => {
        const { chunks, error } = await run(rows, chunkBytes);
        for (const chunk of chunks) expect(chunk.length === 1 || chunk.reduce((n, r) => n + size(r), 0) <= chunkBytes).toBe(true);
        if (bad === undefined) {
          expect(error).toBeUndefined();
          expect(chunks.flat()).toEqual(rows); // the same rows, same order, none dropped
          expect(chunks.flat().every((r, i) => r === rows[i])).toBe(true);
          return;
        }
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as Error).message).toContain(`data.train.rows[${bad.index}]${bad.path}: `);
        expect((error as Error).message).toContain(bad.type);
        expect(chunks.flat()).toEqual(rows.slice(0, chunks.flat().length)); // what was sent came before it
        expect(chunks.flat().length).toBeLessThanOrEqual(bad.index);
      }),
      RUNS,
    );
  });

  it('a cycle is refused by index', async () => {
    const row: Record<string, unknown> = { input: 'a' };
    row['self'] = row;
    const { error } = await run([{ input: 'ok' }, row], 1000);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toMatch(/^data\.train\.rows\[1\]/);
  });

  it('a body the encoder cannot carry is a ValidationError, not a bare Error', () => {
    fc.assert(
      fc.property(notJson, ([value]) => {
        try {
          encodeMessage({ v: 1, id: 1, kind: 'request', op: 'data_append', body: { rows: [{ x: value }] } as never, tensors: [] });
        } catch (error) {
          expect(error).toBeInstanceOf(SoftpromptError);
        }
      }),
      { numRuns: 50, seed: 1 },
    );
  });
});
