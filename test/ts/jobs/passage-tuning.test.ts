import { describe, expect, it } from 'vitest';
import { passageTuning } from '../../../ts/src/jobs/passage-tuning.js';
import { trainBody } from '../../../ts/src/jobs/spec.js';

const base = { model: { tiny: 'llama' as const }, data: { train: { rows: [{ query: 'q', positive: 'p' }] } }, runDir: '/runs/pa' };

describe('passageTuning', () => {
  it('fills the PassageTuningConfig and reranking-task defaults (prompt text and length left to the worker)', () => {
    const spec = passageTuning(base);
    expect(spec.method).toBe('passage_tuning');
    expect(spec.config).toEqual({
      init: 'text', passageVectors: 'pooled', numPassageVectors: 8, bottleneckDim: 64, activation: 'gelu', residual: true,
      order: 'passage_first', passagePrefix: 'Passage: ', queryPrefix: ' ', prependBos: true, maxPassageTokens: 256, maxQueryTokens: 64,
    });
    expect(spec.task).toEqual({ type: 'reranking', negatives: 'both', maxHardNegatives: 4, nllWeight: 1, marginWeight: 1, margin: 0.5, score: 'mean', evalBatchSize: 16 });
  });

  it('translates options and task options to snake_case', () => {
    const body = trainBody(passageTuning({ ...base, passageVectors: 'per_token', queryPrefix: '', task: { negatives: 'hard', maxHardNegatives: 2 } }), {});
    expect(body['method_config']).toMatchObject({ passage_vectors: 'per_token', query_prefix: '', num_passage_vectors: 8, prepend_bos: true });
    expect(body['method_config']).not.toHaveProperty('num_virtual_tokens');
    expect(body['task']).toBe('reranking');
    expect(body['task_options']).toEqual({ negatives: 'hard', max_hard_negatives: 2, nll_weight: 1, margin_weight: 1, margin: 0.5, score: 'mean', eval_batch_size: 16 });
  });

  it('names the bad field path in errors', () => {
    expect(() => passageTuning({ ...base, init: 'vocab' })).toThrow("job.numVirtualTokens: required when init is 'vocab'");
    expect(() => passageTuning({ ...base, bottleneckDim: 0 })).toThrow('job.bottleneckDim: must be > 0');
    expect(() => passageTuning({ ...base, initText: '' })).toThrow('job.initText: must not be empty');
    expect(() => passageTuning({ ...base, task: { margin: -1 } })).toThrow('job.task.margin: must be >= 0');
  });

  it('accepts the deprecated promptInit / promptInitText as init / initText, never both spellings', () => {
    const old = passageTuning({ ...base, promptInit: 'vocab', numVirtualTokens: 4, promptInitText: 'Ask:' });
    expect(old.config).toMatchObject({ init: 'vocab', initText: 'Ask:' });
    expect(old.config).not.toHaveProperty('promptInit');
    expect(trainBody(old, {})['method_config']).toMatchObject({ init: 'vocab', init_text: 'Ask:', num_virtual_tokens: 4 });
    expect(trainBody(old, {})['method_config']).not.toHaveProperty('prompt_init');
    expect(() => passageTuning({ ...base, promptInit: 'vocab' })).toThrow("job.numVirtualTokens: required when init is 'vocab'");
    expect(() => passageTuning({ ...base, promptInit: 'text', init: 'text' })).toThrow('job.promptInit: deprecated alias of init; give only init');
    expect(() => passageTuning({ ...base, promptInitText: 'a', initText: 'b' })).toThrow('job.promptInitText: deprecated alias of initText');
  });
});
