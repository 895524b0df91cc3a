/**
 * The inference method modules without a worker: zod validation (errors name the field path), the
 * camelCase → snake_case request bodies the worker reads, and reply decoding.
 */
import { describe, expect, it } from 'vitest';
import { RemoteError, ValidationError } from '../../../ts/src/core/errors.js';
import { classify } from '../../../ts/src/inference/classify.js';
import { Embeddings, embed } from '../../../ts/src/inference/embed.js';
import { Evaluate } from '../../../ts/src/inference/evaluate.js';
import { generate } from '../../../ts/src/inference/generate.js';
import { Prompts } from '../../../ts/src/inference/prompts.js';
import { rerank } from '../../../ts/src/inference/rerank.js';
import type { Rpc } from '../../../ts/src/internal/rpc.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';
import { fakeRpc } from './fake-rpc.js';

const model = { tiny: 'gpt2' } as const;

/** Runs `call`, expecting a ValidationError (thrown or rejected) whose message contains `message`. */
async function expectInvalid(call: () => unknown, message: string): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).message).toContain(message);
}

describe('generate', () => {
  it('sends the worker snake_case fields, leaving unset options to its defaults', async () => {
    const { rpc, sent } = fakeRpc({ body: { outputs: ['!'] } }, [{ row: 0, text: '!', token_ids: [33] }]);
    const stream = generate(rpc, { model: { tiny: 'gpt2', overrides: { initializer_range: 0.2 } }, prompt: 'p', inputs: ['x'], maxNewTokens: 5, doSample: true, topP: 0.9, stop: ['\n'], batchSize: 2 });
    const deltas = [];
    for await (const d of stream) deltas.push(d);
    expect(sent).toEqual([
      {
        op: 'generate',
        body: { model: { tiny: 'gpt2', overrides: { initializer_range: 0.2 } }, prompt: 'p', inputs: ['x'], max_new_tokens: 5, do_sample: true, top_p: 0.9, stop: ['\n'], batch_size: 2 },
      },
    ]);
    expect(deltas).toEqual([{ row: 0, text: '!', tokenIds: [33] }]);
    await expect(stream.result()).resolves.toEqual({ outputs: ['!'] });
  });

  it.each([
    [{ model, inputs: ['x'], topP: 1.5 }, 'generate.topP: must be in (0, 1]'],
    [{ model, inputs: ['x'], temperature: 0 }, 'generate.temperature: must be > 0'],
    [{ model, inputs: ['x'], maxNewTokens: 0 }, 'generate.maxNewTokens: must be an integer in 1..4096'],
    [{ model, inputs: ['x'], maxNewTokens: 4097 }, 'generate.maxNewTokens:'],
    [{ model, inputs: [] }, 'generate.inputs: expected at least one string'],
    [{ model, inputs: ['x', 3] }, 'generate.inputs.1: expected string'],
    [{ model, inputs: ['x'], stop: [''] }, 'generate.stop.0: must not be empty'],
    [{ model, inputs: ['x'], max_new_tokens: 3 }, 'generate.max_new_tokens: unknown field'],
    [{ inputs: ['x'] }, 'generate.model: required when no prompt is named'],
    [{ prompts: [null], inputs: ['x'] }, 'generate.model: required when no prompt is named'],
    [{ prompts: ['a'], inputs: ['x', 'y'] }, 'generate.prompts: expected one entry per input (2), got 1'],
    [{ prompt: 'a', prompts: ['a'], inputs: ['x'] }, "generate.prompts: give 'prompt' (all rows) or 'prompts'"],
    [{ model: { tiny: 'gpt3' }, inputs: ['x'] }, 'generate.model.tiny:'],
    [{ model: { tiny: 'gpt2', nameOrPath: 'gpt2' }, inputs: ['x'] }, 'generate.model.nameOrPath: unknown field'],
  ])('names the bad field: %j', async (input, message) => {
    await expectInvalid(() => generate(fakeRpc().rpc, input as never), message);
  });

  it('lets the prompts pick the model', async () => {
    const { rpc, sent } = fakeRpc({ body: { outputs: ['', ''] } });
    await generate(rpc, { prompts: ['a', null], inputs: ['x', 'y'] }).result();
    expect(sent[0]!.body).toEqual({ prompts: ['a', null], inputs: ['x', 'y'] });
  });
});

describe('classify', () => {
  it('sends labels and decodes predictions with their scores', async () => {
    const { rpc, sent } = fakeRpc({ body: { predictions: ['no'], scores: [[-3, -1]] } });
    await expect(classify(rpc, { prompt: 'p', inputs: ['x'], labels: ['yes', 'no'], batchSize: 4 })).resolves.toEqual({
      predictions: ['no'],
      scores: [[-3, -1]],
    });
    expect(sent[0]).toEqual({ op: 'classify', body: { prompt: 'p', inputs: ['x'], labels: ['yes', 'no'], batch_size: 4 } });
  });

  it('rejects (does not throw) on invalid input', async () => {
    const call = classify(fakeRpc().rpc, { prompt: 'p', inputs: ['x'], labels: ['yes'] });
    await expect(call).rejects.toThrow('classify.labels: expected at least two labels');
    await expectInvalid(() => classify(fakeRpc().rpc, { prompt: 'p', inputs: ['x'], labels: ['a', ''] }), 'classify.labels.1:');
  });
});

describe('prompts', () => {
  const info = { name: 'a', path: '/r/a.pb', method: 'prompt_tuning', method_config: { num_virtual_tokens: 4 }, model: 'tiny:gpt2', num_trainable_parameters: 256, step: 3, metrics: { loss: 1.5 } };
  const camel = { name: 'a', path: '/r/a.pb', method: 'prompt_tuning', methodConfig: { num_virtual_tokens: 4 }, model: 'tiny:gpt2', numTrainableParameters: 256, step: 3, metrics: { loss: 1.5 }, shared: false };

  it('loads with a model spec and decodes the description', async () => {
    const { rpc, sent } = fakeRpc({ body: info });
    await expect(new Prompts(rpc).load('a', '/r/a.pb', { model: { nameOrPath: 'gpt2', trustRemoteCode: false } })).resolves.toEqual(camel);
    expect(sent[0]).toEqual({ op: 'prompt_load', body: { name: 'a', path: '/r/a.pb', model: { name_or_path: 'gpt2', trust_remote_code: false } } });
  });

  it('lists and unloads', async () => {
    await expect(new Prompts(fakeRpc({ body: { prompts: [info] } }).rpc).list()).resolves.toEqual([camel]);
    const { rpc, sent } = fakeRpc({ body: { unloaded: true } });
    await expect(new Prompts(rpc).unload('a')).resolves.toBe(true);
    expect(sent[0]).toEqual({ op: 'prompt_unload', body: { name: 'a' } });
  });

  it('loads a prompt every client of a shared worker sees with shared: true', async () => {
    const { rpc, sent } = fakeRpc({ body: { ...info, shared: true } });
    await expect(new Prompts(rpc).load('a', '/r/a.pb', { shared: true })).resolves.toEqual({ ...camel, shared: true });
    expect(sent[0]).toEqual({ op: 'prompt_load', body: { name: 'a', path: '/r/a.pb', shared: true } });
    await expect(new Prompts(rpc).load('a', '/r/a.pb', { shared: 'yes' as never })).rejects.toThrow('prompts.load.shared:');
  });

  it('loads what it loaded into a restarted worker again, not what it unloaded or the worker refused', async () => {
    const { rpc, restartHooks } = fakeRpc({ body: { ...info, unloaded: true } }); // one reply fits load and unload
    const prompts = new Prompts(rpc);
    expect(restartHooks).toHaveLength(0); // nothing to replay yet
    await prompts.load('a', '/r/a.pb');
    await prompts.load('b', '/r/b.pb', { model: { tiny: 'gpt2', seed: 3 } });
    await prompts.load('c', '/r/c.pb');
    await prompts.unload('c');
    expect(restartHooks).toHaveLength(1); // one hook per Prompts, however many loads
    const replay = async (refuse: string[]) => {
      const sent: WireMap[] = [];
      const worker = {
        log: () => {},
        request: (op: string, body: WireMap) => {
          sent.push(body);
          return refuse.includes(body['name'] as string) ? Promise.reject(new RemoteError('not_found', 'gone', op)) : Promise.resolve({});
        },
      };
      await restartHooks[0]!(worker as unknown as Rpc);
      return sent;
    };
    expect(await replay(['a'])).toEqual([
      { name: 'a', path: '/r/a.pb' },
      { name: 'b', path: '/r/b.pb', model: { tiny: 'gpt2', seed: 3 } },
    ]);
    expect(await replay([])).toEqual([{ name: 'b', path: '/r/b.pb', model: { tiny: 'gpt2', seed: 3 } }]); // 'a' was refused: forgotten
  });

  it('names the bad argument', async () => {
    const prompts = new Prompts(fakeRpc().rpc);
    await expectInvalid(() => prompts.load('', '/x.pb'), 'prompts.load.name: expected a non-empty prompt name');
    await expectInvalid(() => prompts.load('a', ''), 'prompts.load.path: expected a checkpoint file path');
    await expectInvalid(() => prompts.load('a', '/x.pb', { model: { tiny: 'gpt2', seed: -1 } }), 'prompts.load.model.seed:');
    await expectInvalid(() => prompts.unload(''), 'prompts.unload.name:');
  });
});

describe('embed', () => {
  const data = new Float32Array([1, 0, 0, 1, 1, 0]);
  const reply = {
    body: { count: 3, dim: 2, pooling: 'mean', normalized: true, source: 'base' },
    tensors: { embeddings: { dtype: 'f32' as const, shape: [3, 2], data } },
  };

  it('wraps the reply tensor without copying it', async () => {
    const { rpc, sent } = fakeRpc(reply, [{ event: 'progress', done: 2, total: 3 }]);
    const progress: unknown[] = [];
    const e = await embed(rpc, { model, texts: ['a', 'b', 'a'], batchSize: 8, normalize: true, pooling: 'mean' }, { onProgress: (p) => progress.push(p) });
    expect(sent[0]).toEqual({ op: 'embed', body: { model, texts: ['a', 'b', 'a'], batch_size: 8, normalize: true, pooling: 'mean' } });
    expect(progress).toEqual([{ done: 2, total: 3 }]);
    expect(e).toBeInstanceOf(Embeddings);
    expect([e.rows, e.dim, e.pooling, e.normalized, e.source]).toEqual([3, 2, 'mean', true, 'base']);
    expect(e.data).toBe(data);
    expect(e.row(1).buffer).toBe(data.buffer);
    expect(Array.from(e.row(2))).toEqual([1, 0]);
    expect(e.cosine(0, 2)).toBe(1);
    expect(e.cosine(0, 1)).toBe(0);
  });

  it('refuses a reply whose tensor does not match its body', async () => {
    const bad = { ...reply, tensors: { embeddings: { dtype: 'f32' as const, shape: [2, 3], data } } };
    await expect(embed(fakeRpc(bad).rpc, { model, texts: ['a'] })).rejects.toThrow('expected tensor "embeddings" f32 [3, 2], got f32 [2, 3]');
  });

  it.each([
    [{ texts: ['a'] }, 'embed.model: required when no prompt is given'],
    [{ model, texts: [] }, 'embed.texts:'],
    [{ model, texts: ['a', null] }, 'embed.texts.1:'],
    [{ model, texts: ['a'], pooling: 'max' }, 'embed.pooling:'],
    [{ model, texts: ['a'], batchSize: 0 }, 'embed.batchSize:'],
    [{ model, texts: ['a'], normalise: true }, 'embed.normalise: unknown field'],
  ])('names the bad field: %j', async (input, message) => {
    await expectInvalid(() => embed(fakeRpc().rpc, input as never), message);
  });

  it('embeds with a prompt alone', async () => {
    const { rpc, sent } = fakeRpc(reply);
    await embed(rpc, { prompt: '/r/sx.pb', texts: ['a', 'b', 'c'] });
    expect(sent[0]!.body).toEqual({ prompt: '/r/sx.pb', texts: ['a', 'b', 'c'] });
  });
});

describe('rerank', () => {
  const reply = {
    body: {
      reranker: 'upr',
      results: [
        { indices: [1, 0], log_likelihood: [-2, -5], mean_log_likelihood: [-1, -2.5] },
        { indices: [0], log_likelihood: [-3], mean_log_likelihood: [-1.5] },
      ],
    },
  };

  it('sends one query as a list of one and returns its ranked passages', async () => {
    const one = { body: { reranker: 'upr', results: [reply.body.results[0]!] } };
    const { rpc, sent } = fakeRpc(one);
    const r = await rerank(rpc, { model, query: 'q', passages: ['p0', 'p1'], topK: 2, batchSize: 4 });
    expect(sent[0]).toEqual({ op: 'rerank', body: { model, batch_size: 4, queries: [{ query: 'q', passages: ['p0', 'p1'], top_k: 2 }] } });
    expect(r).toEqual({
      reranker: 'upr',
      passages: [
        { index: 1, passage: 'p1', logLikelihood: -2, meanLogLikelihood: -1 },
        { index: 0, passage: 'p0', logLikelihood: -5, meanLogLikelihood: -2.5 },
      ],
    });
  });

  it('sends many queries in one call, applying the default topK', async () => {
    const { rpc, sent } = fakeRpc(reply);
    const r = await rerank(rpc, { model, prompt: '/r/pa.pb', topK: 1, queries: [{ query: 'a', passages: ['x', 'y'] }, { query: 'b', passages: ['z', 'w'], topK: 2 }] });
    expect(sent[0]!.body).toEqual({
      model,
      prompt: '/r/pa.pb',
      queries: [{ query: 'a', passages: ['x', 'y'], top_k: 1 }, { query: 'b', passages: ['z', 'w'], top_k: 2 }],
    });
    expect(r.map((q) => q.passages.map((p) => p.passage))).toEqual([['y', 'x'], ['z']]);
  });

  it('takes a loaded prompt name without a model (the worker uses the prompt\'s)', async () => {
    const { rpc, sent } = fakeRpc({ body: { reranker: 'passage_tuning', results: [reply.body.results[1]!] } });
    const r = await rerank(rpc, { prompt: 'ranker', query: 'q', passages: ['p'] });
    expect(sent[0]!.body).toEqual({ prompt: 'ranker', queries: [{ query: 'q', passages: ['p'] }] });
    expect(r.reranker).toBe('passage_tuning');
    const metrics = { 'hits@1': 1, 'hits@5': 1, mrr: 1, 'ndcg@10': 1 };
    const evaluation = fakeRpc({ body: { reranker: 'passage_tuning', queries: 1, metrics } });
    const evaluate = new Evaluate(evaluation.rpc);
    await expect(evaluate.reranking({ prompt: 'ranker', rows: [{ query: 'q', positive: 'p' }] })).resolves.toMatchObject({ metrics });
    expect(evaluation.sent[0]).toEqual({ op: 'evaluate_reranking', body: { prompt: 'ranker', rows: [{ query: 'q', positive: 'p' }] } });
    await expectInvalid(() => evaluate.reranking({ rows: [{ query: 'q', positive: 'p' }] }), 'evaluate.reranking.model: required when no prompt');
  });

  it.each([
    [{ query: 'q', passages: ['p'] }, 'rerank.model: required when no prompt is given'],
    [{ model, query: ' ', passages: ['p'] }, 'rerank.query: expected a non-empty string'],
    [{ model, query: 'q', passages: [''] }, 'rerank.passages.0: expected a non-empty string'],
    [{ model, query: 'q' }, "rerank.passages: required (or give 'queries')"],
    [{ model, query: 'q', passages: ['p'], queries: [{ query: 'q', passages: ['p'] }] }, "rerank.query: give 'query' + 'passages', or 'queries'"],
    [{ model, queries: [{ query: 'q', passages: ['p'], topK: 0 }] }, 'rerank.queries.0.topK: must be > 0'],
    [{ model, queries: [] }, 'rerank.queries: expected at least one query'],
  ])('names the bad field: %j', async (input, message) => {
    await expectInvalid(() => rerank(fakeRpc().rpc, input as never), message);
  });
});

describe('evaluate', () => {
  it('retrieval keeps user ids as they are and decodes the metrics', async () => {
    const metrics = { 'ndcg@10': 1, 'recall@10': 1, 'mrr@10': 1 };
    const { rpc, sent } = fakeRpc({ body: { source: 'base', metrics, queries: 1, corpus: 2, pairs: 0 } });
    const input = { model, queries: { qOne: 'q' }, corpus: { docOne: 'a', docTwo: 'b' }, qrels: { qOne: { docOne: 1 } }, kValues: [10] };
    await expect(new Evaluate(rpc).retrieval(input)).resolves.toEqual({ source: 'base', metrics, queries: 1, corpus: 2, pairs: 0 });
    expect(sent[0]).toEqual({ op: 'evaluate_retrieval', body: { model, queries: { qOne: 'q' }, corpus: { docOne: 'a', docTwo: 'b' }, qrels: { qOne: { docOne: 1 } }, k_values: [10] } });
  });

  it.each([
    [{ model }, "evaluate.retrieval: give 'queries' + 'corpus' + 'qrels', or 'sts', or both"],
    [{ model, queries: { q: 'q' }, corpus: { d: 'd' } }, 'evaluate.retrieval.qrels: required with a retrieval set'],
    [{ model, queries: {}, corpus: { d: 'd' }, qrels: { q: { d: 1 } } }, 'evaluate.retrieval.queries: expected a non-empty map'],
    [{ model, queries: { q: 'q' }, corpus: { d: 'd' }, qrels: { q: { d: 'yes' } } }, 'evaluate.retrieval.qrels.q.d:'],
    [{ model, sts: { pairs: [['a', 'b'], ['c', 'd']], scores: [1] } }, 'evaluate.retrieval.sts.scores: expected one score per pair'],
    [{ model, sts: { pairs: [['a', 'b'], ['c', 'd']], scores: [1, 2] }, kValues: [0] }, 'evaluate.retrieval.kValues.0:'],
  ])('retrieval names the bad field: %j', async (input, message) => {
    await expectInvalid(() => new Evaluate(fakeRpc().rpc).retrieval(input as never), message);
  });

  it('reranking sends rows and decodes the metrics', async () => {
    const metrics = { 'hits@1': 1, 'hits@5': 1, mrr: 1, 'ndcg@10': 1, queries: 1 };
    const { rpc, sent } = fakeRpc({ body: { reranker: 'upr', queries: 1, metrics } });
    const rows = [{ query: 'q', positive: 'p', negatives: ['n'] }];
    await expect(new Evaluate(rpc).reranking({ model, rows })).resolves.toEqual({ reranker: 'upr', queries: 1, metrics });
    expect(sent[0]).toEqual({ op: 'evaluate_reranking', body: { model, rows } });
    await expectInvalid(() => new Evaluate(rpc).reranking({ model, rows: [{ query: 'q' } as never] }), 'evaluate.reranking.rows.0.positive:');
  });
});
