/**
 * Inference against the real worker on a tiny GPT-2 (random weights, scaled up so greedy outputs vary):
 * the prompt cache, streamed generation, classification, embeddings, reranking and evaluation.
 * Prompts are untrained checkpoints written by fixtures/write_prompts.py (the worker's own
 * checkpoints.py) in parallel with the worker's start, plus one trained for 2 steps with sp.train.
 * One worker serves the whole file (~15 s of CPU); the last test kills it and checks that the restarted
 * worker has the prompts again.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { AbortError, RemoteError } from '../../../ts/src/core/errors.js';
import { workerPythonPath } from '../../../ts/src/internal/python.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { fixtures, testWorkerOptions, venvPython } from '../helpers.js';

const model: TinyModelSpec = { tiny: 'gpt2', overrides: { initializer_range: 0.2 } };
const INPUTS = ['hello there', 'x', 'a longer input text'];

type Checkpoints = Record<'pt' | 'px' | 'sx' | 'pa', string>;

async function writePrompts(dir: string): Promise<Checkpoints> {
  const { stdout } = await promisify(execFile)(venvPython, [join(fixtures, 'write_prompts.py'), dir, JSON.stringify(model)], {
    env: { ...process.env, PYTHONPATH: workerPythonPath(), OMP_NUM_THREADS: '1' },
  });
  return JSON.parse(stdout) as Checkpoints;
}

describe('inference with the real worker', () => {
  let sp: Softprompt;
  let dir: string;
  let paths: Checkpoints;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-infer-'));
    [sp, paths] = await Promise.all([Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } })), writePrompts(dir)]);
    await sp.prompts.load('pt', paths.pt, { model });
    await sp.prompts.load('px', paths.px, { model });
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('prompts', () => {
    it('lists, unloads and reloads by name', async () => {
      const listed = await sp.prompts.list();
      expect(listed.map((p) => [p.name, p.method])).toEqual([['pt', 'prompt_tuning'], ['px', 'prefix_tuning']]);
      expect(listed[0]).toMatchObject({ path: paths.pt, model: 'tiny:gpt2', step: 1, metrics: { loss: 1 }, methodConfig: { num_virtual_tokens: 4 } });
      expect(listed[0]!.numTrainableParameters).toBeGreaterThan(0);
      await sp.prompts.load('tmp', paths.pt, { model });
      await expect(sp.prompts.unload('tmp')).resolves.toBe(true);
      await expect(sp.prompts.unload('tmp')).resolves.toBe(false);
      expect((await sp.prompts.list()).map((p) => p.name)).toEqual(['pt', 'px']);
    });

    it('loads the checkpoint of a prompt trained with sp.train and generates with it', async () => {
      const rows = ['abc', 'kite', 'moon', 'tea'].map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));
      const spec = promptTuning({
        model,
        numVirtualTokens: 4,
        data: { train: { rows } },
        training: { steps: 2, batchSize: 4, lr: 0.1, schedule: 'constant' },
        runDir: join(dir, 'run'),
      });
      const { checkpoint } = await sp.train(spec).result();
      const info = await sp.prompts.load('trained', checkpoint, { model });
      expect(info).toMatchObject({ method: 'prompt_tuning', step: 2, methodConfig: { num_virtual_tokens: 4 } });
      const { outputs } = await sp.generate({ prompt: 'trained', inputs: ['abc='], maxNewTokens: 4 }).result();
      expect(outputs).toHaveLength(1);
      await sp.prompts.unload('trained');
    });

    it('reports a missing checkpoint and an unloaded prompt as remote errors', async () => {
      await expect(sp.prompts.load('nope', join(dir, 'missing.pb'), { model })).rejects.toMatchObject({ code: 'not_found' });
      const stream = sp.generate({ prompt: 'never-loaded', inputs: ['x'] });
      await expect(stream.result()).rejects.toBeInstanceOf(RemoteError);
    });
  });

  describe('generate', () => {
    it('streams deltas whose concatenation per row is the result', async () => {
      const stream = sp.generate({ prompt: 'pt', inputs: INPUTS, maxNewTokens: 8, batchSize: 2 });
      const text = INPUTS.map(() => '');
      let events = 0;
      for await (const { row, text: delta, tokenIds } of stream) {
        text[row] += delta;
        expect(tokenIds.length).toBeGreaterThan(0);
        events++;
      }
      const { outputs } = await stream.result();
      expect(text).toEqual(outputs);
      expect(events).toBeGreaterThan(0);
      expect(outputs.some((o) => o.length > 0)).toBe(true);
    });

    it('is deterministic when greedy, and a mixed batch equals each row alone', async () => {
      const prompts = ['pt', 'px', null];
      const batched = (await sp.generate({ model, prompts, inputs: INPUTS, maxNewTokens: 6 }).result()).outputs;
      const again = (await sp.generate({ model, prompts, inputs: INPUTS, maxNewTokens: 6 }).result()).outputs;
      expect(again).toEqual(batched);
      const alone = [];
      for (let i = 0; i < INPUTS.length; i++) {
        alone.push((await sp.generate({ model, prompts: [prompts[i]!], inputs: [INPUTS[i]!], maxNewTokens: 6 }).result()).outputs[0]);
      }
      expect(alone).toEqual(batched);
      // the two prompts really differ: the same input continues differently under each
      const same = (await sp.generate({ prompts: ['pt', 'px'], inputs: ['abc', 'abc'], maxNewTokens: 6 }).result()).outputs;
      expect(same[0]).not.toEqual(same[1]);
    });

    it('repeats sampled outputs for the same seed', async () => {
      const input = { prompt: 'pt', inputs: ['x', 'x'], maxNewTokens: 6, doSample: true, temperature: 1.5, topP: 0.95, seed: 7 };
      const a = await sp.generate(input).result();
      expect(await sp.generate(input).result()).toEqual(a);
    });

    it('leaving the loop cancels the generation', async () => {
      const stream = sp.generate({ prompt: 'pt', inputs: ['x'], maxNewTokens: 240 }); // the model has 256 positions
      for await (const _ of stream) break;
      await expect(stream.result()).rejects.toBeInstanceOf(AbortError);
      await expect(sp.ping()).resolves.toBeGreaterThan(0); // the worker serves on
    });
  });

  it('classifies with one prompt per row', async () => {
    const labels = ['yes', 'no', 'maybe'];
    const { predictions, scores } = await sp.classify({ model, prompts: ['pt', 'px', null], inputs: INPUTS, labels });
    expect(scores).toHaveLength(3);
    scores.forEach((row, i) => {
      expect(row).toHaveLength(3);
      expect(predictions[i]).toBe(labels[row.indexOf(Math.max(...row))]);
    });
  });

  describe('embed', () => {
    const texts = ['hello world', 'something else entirely', 'hello world'];

    it('embeds with the base model: rows × dim, equal rows for equal texts, unit norm', async () => {
      const progress: number[] = [];
      const e = await sp.embed({ model, texts, batchSize: 2 }, { onProgress: (p) => progress.push(p.done) });
      expect([e.rows, e.dim, e.source, e.pooling, e.normalized]).toEqual([3, 64, 'base', 'mean', true]);
      expect(e.data).toBeInstanceOf(Float32Array);
      expect(Array.from(e.row(2))).toEqual(Array.from(e.row(0)));
      for (const row of e) expect(Math.hypot(...row)).toBeCloseTo(1, 5);
      expect(e.cosine(0, 2)).toBeCloseTo(1, 5);
      expect(e.cosine(0, 1)).toBeLessThan(1);
    });

    it('leaves rows unnormalised on request, and embeds with a suffix prompt', async () => {
      const raw = await sp.embed({ model, texts, normalize: false });
      expect(raw.normalized).toBe(false);
      expect(Math.hypot(...raw.row(0))).not.toBeCloseTo(1, 3);
      const suffix = await sp.embed({ model, prompt: paths.sx, texts });
      expect([suffix.rows, suffix.dim, suffix.source, suffix.pooling]).toEqual([3, 64, 'suffix_tuning', 'last']);
      expect(Array.from(suffix.row(2))).toEqual(Array.from(suffix.row(0)));
    });

    it('embeds with a suffix prompt loaded by name, no model needed; refuses a prompt of another method', async () => {
      expect((await sp.prompts.load('sx', paths.sx)).method).toBe('suffix_tuning'); // the checkpoint names its model
      try {
        const byName = await sp.embed({ prompt: 'sx', texts });
        const byPath = await sp.embed({ model, prompt: paths.sx, texts });
        expect(byName.source).toBe('suffix_tuning');
        expect(Array.from(byName.data)).toEqual(Array.from(byPath.data));
        const wrong = sp.embed({ prompt: 'pt', texts });
        await expect(wrong).rejects.toBeInstanceOf(RemoteError);
        await expect(wrong).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringContaining("prompt 'pt' is a prompt_tuning prompt; embed needs suffix_tuning") });
      } finally {
        await sp.prompts.unload('sx');
      }
    });
  });

  describe('rerank', () => {
    const passages = ['the cat sat on the mat', 'stock prices fell today', 'cats like to sit', 'rain is forecast'];

    it('orders passages for several queries in one call, with scores', async () => {
      const results = await sp.rerank({ model, queries: [{ query: 'where did the cat sit?', passages }, { query: 'what fell?', passages, topK: 2 }] });
      expect(results).toHaveLength(2);
      expect(results[0]!.reranker).toBe('upr');
      expect(results[0]!.passages.map((p) => p.index).sort()).toEqual([0, 1, 2, 3]);
      expect(results[1]!.passages).toHaveLength(2);
      for (const { passages: ranked } of results) {
        for (const p of ranked) {
          expect(p.passage).toBe(passages[p.index]);
          expect(p.logLikelihood).toBeLessThan(0);
          expect(p.meanLogLikelihood).toBeLessThan(0);
        }
        const scores = ranked.map((p) => p.logLikelihood);
        expect(scores).toEqual([...scores].sort((a, b) => b - a));
      }
      // one query alone scores as it does in a batch
      const one = await sp.rerank({ model, query: 'what fell?', passages, topK: 2 });
      expect(one.passages.map((p) => p.index)).toEqual(results[1]!.passages.map((p) => p.index));
      expect(one.passages[0]!.logLikelihood).toBeCloseTo(results[1]!.passages[0]!.logLikelihood, 4);
    });

    it('reranks with a passage_tuning prompt', async () => {
      const { reranker, passages: ranked } = await sp.rerank({ model, prompt: paths.pa, query: 'what fell?', passages });
      expect(reranker).toBe('passage_tuning');
      expect(ranked).toHaveLength(4);
    });

    it('reranks with a passage_tuning prompt loaded by name, no model needed; refuses a prompt of another method', async () => {
      await sp.prompts.load('pa', paths.pa);
      try {
        const byName = await sp.rerank({ prompt: 'pa', query: 'what fell?', passages });
        expect(byName).toEqual(await sp.rerank({ model, prompt: paths.pa, query: 'what fell?', passages }));
        expect(byName.reranker).toBe('passage_tuning');
        const rows = [{ query: 'what fell?', positive: passages[1]!, negatives: [passages[0]!] }];
        expect((await sp.evaluate.reranking({ prompt: 'pa', rows })).reranker).toBe('passage_tuning');
        await expect(sp.rerank({ prompt: 'px', query: 'q', passages })).rejects.toMatchObject({
          code: 'invalid_argument',
          message: expect.stringContaining("prompt 'px' is a prefix_tuning prompt; rerank needs passage_tuning"),
        });
      } finally {
        await sp.prompts.unload('pa');
      }
    });
  });

  describe('evaluate', () => {
    it('retrieval returns nDCG@k, Recall@k, MRR@k and STS Spearman', async () => {
      const r = await sp.evaluate.retrieval({
        model,
        queries: { q1: 'cat on a mat', q2: 'falling prices' },
        corpus: { d1: 'the cat sat on the mat', d2: 'stock prices fell today', d3: 'rain is forecast' },
        qrels: { q1: { d1: 1 }, q2: { d2: 1 } },
        kValues: [1, 10],
        sts: { pairs: [['a cat', 'a kitten'], ['a cat', 'the stock market'], ['rain', 'a storm']], scores: [4, 0, 3] },
      });
      expect(Object.keys(r.metrics).sort()).toEqual(['mrr@1', 'mrr@10', 'ndcg@1', 'ndcg@10', 'recall@1', 'recall@10', 'sts_spearman']);
      expect([r.source, r.queries, r.corpus, r.pairs]).toEqual(['base', 2, 3, 3]);
      expect(r.metrics['recall@10']).toBe(1); // every document is in the top 10 of a 3-document corpus
    });

    it('reranking returns Hits@1, Hits@5, MRR and nDCG@10', async () => {
      const r = await sp.evaluate.reranking({
        model,
        rows: [
          { query: 'where did the cat sit?', positive: 'the cat sat on the mat', negatives: ['stock prices fell', 'rain is forecast'] },
          { query: 'what fell?', positive: 'stock prices fell today', negatives: ['the cat sat on the mat'] },
        ],
      });
      expect(r.reranker).toBe('upr');
      expect(r.queries).toBe(2);
      for (const key of ['hits@1', 'hits@5', 'mrr', 'ndcg@10']) expect(r.metrics[key]).toBeGreaterThanOrEqual(0);
      expect(r.metrics['hits@5']).toBe(1); // at most 3 candidates
    });
  });

  // Last: it kills the worker every other test uses.
  it('loads its prompts into the worker restarted after a kill -9, before the next call reaches it', async () => {
    const input = { prompt: 'pt', inputs: INPUTS, maxNewTokens: 6 };
    const before = (await sp.generate(input).result()).outputs;
    const pid = sp.workerPid!;
    process.kill(pid, 'SIGKILL');
    await vi.waitFor(() => expect(sp.workerPid).not.toBe(pid), { timeout: 10_000 }); // the crash is noticed
    expect(sp.workerPid).toBeUndefined(); // restarting: the call below waits for the new worker and its prompts
    expect((await sp.generate(input).result()).outputs).toEqual(before);
    expect(sp.workerPid).not.toBe(pid);
    expect((await sp.prompts.list()).map((p) => p.name)).toEqual(['pt', 'px']); // not 'sx', 'pa': unloaded
  });
});
