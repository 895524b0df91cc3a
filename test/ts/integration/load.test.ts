/**
 * Load (issue 8): 1,000 concurrent embed/rerank calls from 4 clients against one shared worker
 * (`softprompt-worker serve`, CURVE, --max-queued 100). Every call is answered or fails with a typed
 * error, none is lost or crossed (each answer equals a reference computed for its own text), memory
 * stays bounded, and backpressure replaces unbounded queues: with the client's in-flight limit the
 * worker's queue never overflows; without it the overflow gets `busy`, not a bigger queue.
 * Correctness only; bench/load/bench.mjs measures throughput and latency.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { RemoteError } from '../../../ts/src/core/errors.js';
import type { Embeddings } from '../../../ts/src/inference/embed.js';
import type { Reranked } from '../../../ts/src/inference/rerank.js';
import { quietLogger } from '../helpers.js';
import { type Keys, type Served, kill, makeKeys, rssBytes, serve } from './served-worker.js';

const model = { tiny: 'gpt2' as const };
const CLIENTS = 4;
const PER_CLIENT = 250;
const MAX_QUEUED = 100; // the worker's queue; 4 clients × maxInFlight 16 = 64 stay under it
const TOLERANCE = 1e-5; // batched reference vs one-text calls differ by float rounding only (~1e-7 seen)
const WORDS = ['river', 'stone', 'copper', 'violet', 'engine', 'harbor', 'maple', 'signal', 'quartz', 'lantern', 'orbit'];

/** Call `i` of client `c`: a distinct text; every 4th call is a rerank, the others embed. */
const textOf = (c: number, i: number) => `${WORDS[i % 11]} ${WORDS[(i * 7 + c) % 11]} c${c} n${i}`;
const isRerank = (i: number) => i % 4 === 3;
const passagesOf = (c: number, i: number) => [`${WORDS[(i + c) % 11]} shore`, `the ${WORDS[(i * 3) % 11]} of c${c}`];

interface Reference {
  embedding: Map<string, Float32Array>;
  scores: Map<string, number[]>; // log-likelihood per passage, in passage order
}

function close(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (Math.abs(a[k]! - b[k]!) > TOLERANCE * (1 + Math.abs(b[k]!))) return false;
  return true;
}

function byIndex(r: Reranked): number[] {
  return [...r.passages].sort((x, y) => x.index - y.index).map((p) => p.logLikelihood);
}

/** Fires every call of `clients` at once; returns how many were answered correctly and how many got `busy`. */
async function fire(clients: Softprompt[], ref: Reference): Promise<{ answered: number; busy: number; other: unknown[] }> {
  const calls = clients.flatMap((sp, c) =>
    Array.from({ length: PER_CLIENT }, async (_, i): Promise<'ok' | 'busy' | unknown> => {
      const text = textOf(c, i);
      try {
        if (isRerank(i)) {
          const got = byIndex(await sp.rerank({ model, query: text, passages: passagesOf(c, i) }));
          return close(got, ref.scores.get(text)!) ? 'ok' : new Error(`rerank of ${text}: ${got} is not its reference`);
        }
        const got = (await sp.embed({ model, texts: [text] })) as Embeddings;
        return got.rows === 1 && close(got.row(0), ref.embedding.get(text)!) ? 'ok' : new Error(`embedding of ${text} is not its reference`);
      } catch (error) {
        return error instanceof RemoteError && error.code === 'busy' ? 'busy' : error;
      }
    }),
  );
  const outcomes = await Promise.all(calls); // each call settles: none lost
  return {
    answered: outcomes.filter((o) => o === 'ok').length,
    busy: outcomes.filter((o) => o === 'busy').length,
    other: outcomes.filter((o) => o !== 'ok' && o !== 'busy'),
  };
}

describe('load: 1,000 concurrent calls from 4 clients on one shared worker', () => {
  let keys: Keys;
  let server: Served;
  const open: Softprompt[] = [];
  const ref: Reference = { embedding: new Map(), scores: new Map() };

  const clients = (maxInFlight: number) =>
    Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const who = c % 2 ? 'bob' : 'alice';
        const sp = await Softprompt.connect(server.endpoint, { keys: { dir: keys.dir(who), name: who }, maxInFlight, logger: quietLogger() });
        open.push(sp);
        return sp;
      }),
    );

  beforeAll(async () => {
    keys = await makeKeys();
    server = await serve(keys, 'tcp://127.0.0.1:*', ['--max-queued', String(MAX_QUEUED)]);
    // The references: every text in one batched call per op, on a separate connection.
    const [sp] = await clients(16);
    const embedTexts: string[] = [];
    const queries: { query: string; passages: string[] }[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      for (let i = 0; i < PER_CLIENT; i++) {
        if (isRerank(i)) queries.push({ query: textOf(c, i), passages: passagesOf(c, i) });
        else embedTexts.push(textOf(c, i));
      }
    }
    const e = await sp!.embed({ model, texts: embedTexts, batchSize: 64 });
    embedTexts.forEach((t, k) => ref.embedding.set(t, e.row(k).slice()));
    const ranked = await sp!.rerank({ model, queries });
    queries.forEach((q, k) => ref.scores.set(q.query, byIndex(ranked[k]!)));
  });
  afterAll(async () => {
    await Promise.all(open.map((sp) => sp.close()));
    if (server) await kill(server);
    if (keys) rmSync(keys.root, { recursive: true, force: true });
  });

  it('references tell every text apart (so a crossed answer could not pass)', () => {
    const rows = [...ref.embedding.values()];
    const embeds = Array.from({ length: PER_CLIENT }, (_, i) => i).filter((i) => !isRerank(i)).length;
    expect([rows.length, ref.scores.size]).toEqual([CLIENTS * embeds, CLIENTS * (PER_CLIENT - embeds)]);
    let nearest = Number.POSITIVE_INFINITY;
    for (let a = 0; a < rows.length; a += 7) {
      for (let b = a + 1; b < rows.length; b++) {
        nearest = Math.min(nearest, Math.max(...rows[a]!.map((v, k) => Math.abs(v - rows[b]![k]!))));
      }
    }
    expect(nearest).toBeGreaterThan(100 * TOLERANCE);
  });

  it('with the in-flight limit: all 1,000 answered, each with its own result, memory bounded', async () => {
    const before = await rssBytes(server.pid);
    const result = await fire(await clients(16), ref);
    expect(result.other).toEqual([]);
    expect(result).toMatchObject({ answered: CLIENTS * PER_CLIENT, busy: 0 }); // 64 in flight < the worker's 100
    const grown = (await rssBytes(server.pid)) - before;
    expect(grown).toBeLessThan(64 * 2 ** 20);
  });

  it('without it the worker pushes back: the overflow gets `busy`, the rest are answered, none lost', async () => {
    const before = await rssBytes(server.pid);
    const result = await fire(await clients(1_000), ref);
    expect(result.other).toEqual([]);
    expect(result.answered + result.busy).toBe(CLIENTS * PER_CLIENT);
    expect(result.busy).toBeGreaterThan(0);
    expect(result.answered).toBeGreaterThanOrEqual(MAX_QUEUED);
    expect((await rssBytes(server.pid)) - before).toBeLessThan(64 * 2 ** 20);
  });
});
