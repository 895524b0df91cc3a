import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { prefixTuning } from '../../../ts/src/jobs/prefix-tuning.js';
import { trainBody } from '../../../ts/src/jobs/spec.js';

const base = { model: { tiny: 'bart' as const, seed: 3 }, data: { train: { path: '/data/train.jsonl' } }, runDir: '/runs/p' };

describe('prefixTuning', () => {
  it('fills the PrefixTuningConfig defaults', () => {
    const spec = prefixTuning(base);
    expect(spec.method).toBe('prefix_tuning');
    expect(spec.config).toEqual({ numVirtualTokens: 20, prefixProjection: false, seed: 0, init: 'random' });
    expect(spec.task).toEqual({ type: 'generation' });
  });

  it('translates options, model and data to snake_case', () => {
    const spec = prefixTuning({
      ...base,
      numVirtualTokens: 10,
      prefixProjection: true,
      projectionHiddenSize: 512,
      task: 'generation',
      data: { train: { path: '/data/train.jsonl' }, evalFraction: 0.2, onBadRow: 'skip' },
      training: { epochs: 3, lr: 5e-5, checkpointEvery: 100, evalEvery: 50 },
    });
    const body = trainBody(spec, { train: { path: spec.data.train && '/data/train.jsonl' } });
    expect(body['model']).toEqual({ tiny: 'bart', seed: 3 });
    expect(body['method_config']).toEqual({ num_virtual_tokens: 10, prefix_projection: true, projection_hidden_size: 512, seed: 0, init: 'random' });
    expect(body['task']).toBe('generation');
    expect(body).not.toHaveProperty('task_options');
    expect(body['training']).toMatchObject({ epochs: 3, lr: 5e-5, checkpoint_every: 100, eval_every: 50 });
    expect(body['training']).not.toHaveProperty('steps');
  });

  it('keeps tiny-model config overrides as they are', () => {
    const spec = prefixTuning({ ...base, model: { tiny: 'gpt2', overrides: { n_layer: 1 } } });
    expect(trainBody(spec, {})['model']).toEqual({ tiny: 'gpt2', overrides: { n_layer: 1 } });
  });

  it('names the bad field path in errors', () => {
    expect(() => prefixTuning({ ...base, projectionHiddenSize: 0 })).toThrow(new ValidationError('job.projectionHiddenSize: must be > 0'));
    expect(() => prefixTuning({ ...base, prefixProjection: 'yes' as never })).toThrow(/^job\.prefixProjection: expected boolean/);
    expect(() => prefixTuning({ ...base, data: { train: {} as never } })).toThrow('job.data.train: expected { path } (a JSONL file) or { rows }');
    expect(() => prefixTuning({ ...base, training: { maxGradNorm: -1 } })).toThrow('job.training.maxGradNorm: must be >= 0');
    expect(() => prefixTuning({ ...base, init: 'vocab' } as never)).toThrow(/^job\.init: /);
    expect(() => prefixTuning({ ...base, init: 'text' })).toThrow("job.initText: required when init is 'text'");
    expect(() => prefixTuning({ ...base, initText: 'x' })).toThrow("job.initText: only used when init is 'text'");
    expect(() => prefixTuning({ ...base, init: 'text', initText: 'x', prefixProjection: true })).toThrow(/^job\.init: 'text' sets the prefix itself/);
  });

  it('sends the real-word initialisation as init/init_text', () => {
    const spec = prefixTuning({ ...base, init: 'text', initText: 'Summarise:' });
    expect(trainBody(spec, {})['method_config']).toMatchObject({ init: 'text', init_text: 'Summarise:' });
  });
});
