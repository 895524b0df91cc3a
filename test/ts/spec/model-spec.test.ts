/** `model: { embedded }` in job specs: validated by the model spec schema, sent as `embedded`. */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { EMBEDDED_MODELS, type ModelSpec, modelSpecSchema, modelToWire } from '../../../ts/src/spec/model-spec.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { trainBody } from '../../../ts/src/jobs/spec.js';
import { parseModel } from '../../../ts/src/cli/model-arg.js';

const job = { task: { type: 'classification', labels: ['a', 'b'] }, data: { train: { rows: [] } }, runDir: 'runs/x' } as const;

function issues(model: unknown): readonly string[] {
  try {
    promptTuning({ ...job, model: model as ModelSpec });
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).issues;
  }
  throw new Error('expected a ValidationError');
}

describe('embedded model specs', () => {
  it('accepts each embedded name with device and dtype, and sends it as it is', () => {
    expect([...EMBEDDED_MODELS]).toEqual(['smollm2', 'minilm']);
    expect(modelSpecSchema.parse({ embedded: 'minilm', device: 'cpu', dtype: 'f32' })).toEqual({ embedded: 'minilm', device: 'cpu', dtype: 'f32' });
    expect(modelToWire({ embedded: 'smollm2', device: 'cuda' })).toEqual({ embedded: 'smollm2', device: 'cuda' });
    expect(trainBody(promptTuning({ ...job, model: { embedded: 'smollm2' } }), {}).model).toEqual({ embedded: 'smollm2' });
  });

  it('refuses unknown names and mixing with the other ways to name a model', () => {
    expect(issues({ embedded: 'gpt2' })[0]).toMatch(/^job\.model\.embedded: /);
    expect(issues({ embedded: 'smollm2', nameOrPath: 'gpt2' })[0]).toMatch(/nameOrPath/);
    expect(issues({ embedded: 'smollm2', revision: 'main' })[0]).toMatch(/revision/);
  });

  it('is spelled embedded:<name> on the command line', () => {
    expect(parseModel('embedded:smollm2')).toEqual({ embedded: 'smollm2' });
  });
});
