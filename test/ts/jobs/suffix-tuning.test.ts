import { describe, expect, it } from 'vitest';
import { trainBody } from '../../../ts/src/jobs/spec.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';

const base = { model: { tiny: 'bert' as const }, data: { train: { path: '/d/pairs.jsonl' } }, runDir: '/runs/s' };

describe('suffixTuning', () => {
  it('fills the SuffixTuningConfig and embedding-task defaults', () => {
    const spec = suffixTuning(base);
    expect(spec.method).toBe('suffix_tuning');
    expect(spec.config).toEqual({ numVirtualTokens: 16, attention: 'model', pooling: 'last', normalize: true, init: 'vocab' });
    expect(spec.task).toEqual({ type: 'embedding', temperature: 0.05, symmetric: false, gradCacheMiniBatch: 0, evalBatchSize: 64, kValues: [1, 10, 100] });
    expect(suffixTuning({ ...base, task: 'embedding' }).task).toEqual(spec.task);
  });

  it('translates options and task options to snake_case', () => {
    const spec = suffixTuning({ ...base, numVirtualTokens: 8, init: 'text', initText: 'In one word:', maxLength: 128, task: { gradCacheMiniBatch: 16, kValues: [1, 5] } });
    const body = trainBody(spec, {});
    expect(body['method_config']).toEqual({ num_virtual_tokens: 8, attention: 'model', pooling: 'last', normalize: true, init: 'text', init_text: 'In one word:', max_length: 128 });
    expect(body['task']).toBe('embedding');
    expect(body['task_options']).toEqual({ temperature: 0.05, symmetric: false, grad_cache_mini_batch: 16, eval_batch_size: 64, k_values: [1, 5] });
  });

  it("takes attention 'gated' with text-only pooling, as the worker does", () => {
    const spec = suffixTuning({ ...base, attention: 'gated', pooling: 'text_mean' });
    expect(trainBody(spec, {})['method_config']).toMatchObject({ attention: 'gated', pooling: 'text_mean' });
    expect(suffixTuning({ ...base, attention: 'gated', pooling: 'first' }).config.pooling).toBe('first');
    expect(() => suffixTuning({ ...base, attention: 'gated' })).toThrow("job.pooling: attention 'gated' needs 'text_mean' or 'first', got 'last'");
  });

  it('names the bad field path in errors', () => {
    expect(() => suffixTuning({ ...base, numVirtualTokens: 5000 })).toThrow('job.numVirtualTokens: must be <= 4096');
    expect(() => suffixTuning({ ...base, initText: 'x' })).toThrow("job.initText: only used when init is 'text'");
    expect(() => suffixTuning({ ...base, task: { temperature: 0 } })).toThrow('job.task.temperature: must be > 0');
    expect(() => suffixTuning({ ...base, task: { kValues: [] } })).toThrow('job.task.kValues: expected at least one k');
    expect(() => suffixTuning({ ...base, task: 'generation' as 'embedding' })).toThrow("job.task: expected 'embedding' or { type: 'embedding', ... }");
    expect(() => suffixTuning({ ...base, task: { type: 'reranking' as 'embedding' } })).toThrow(/^job\.task\.type: /);
  });
});
