import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { pTuning } from '../../../ts/src/jobs/p-tuning.js';
import { trainBody } from '../../../ts/src/jobs/spec.js';

const base = { model: { tiny: 'gpt2' as const }, data: { train: { path: '/data/train.jsonl' } }, runDir: '/runs/p' };

describe('pTuning', () => {
  it('fills the PTuningConfig defaults', () => {
    const spec = pTuning(base);
    expect(spec.method).toBe('p_tuning');
    expect(spec.config).toEqual({ numVirtualTokens: 20, encoder: 'mlp', encoderNumLayers: 2, init: 'random', seed: 0 });
    expect(spec.task).toEqual({ type: 'generation' });
  });

  it('sends the options in snake_case, classification included', () => {
    const spec = pTuning({ ...base, encoder: 'lstm', encoderHiddenSize: 64, encoderNumLayers: 1, init: 'text', initText: 'Classify:', task: { type: 'classification', labels: ['a', 'b'] } });
    const body = trainBody(spec, {});
    expect(body['method']).toBe('p_tuning');
    expect(body['method_config']).toEqual({ num_virtual_tokens: 20, encoder: 'lstm', encoder_hidden_size: 64, encoder_num_layers: 1, init: 'text', init_text: 'Classify:', seed: 0 });
    expect(body['task']).toBe('classification');
  });

  it('names the bad field in errors', () => {
    expect(() => pTuning({ ...base, encoder: 'gru' as never })).toThrow(/^job\.encoder: /);
    expect(() => pTuning({ ...base, encoderHiddenSize: 0 })).toThrow(new ValidationError('job.encoderHiddenSize: must be > 0'));
    expect(() => pTuning({ ...base, encoderNumLayers: 3 })).toThrow("job.encoderNumLayers: only used when encoder is 'lstm'");
    expect(() => pTuning({ ...base, encoder: 'lstm', encoderNumLayers: 9 })).toThrow('job.encoderNumLayers: must be <= 8, got 9');
    expect(() => pTuning({ ...base, init: 'text' })).toThrow("job.initText: required when init is 'text'");
    expect(() => pTuning({ ...base, numVirtualTokens: 5000 })).toThrow('job.numVirtualTokens: must be <= 4096, got 5000');
  });
});
