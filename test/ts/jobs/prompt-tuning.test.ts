import { resolve } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { promptTuning, type PromptTuningJob } from '../../../ts/src/jobs/prompt-tuning.js';
import { isJobSpec, trainBody } from '../../../ts/src/jobs/spec.js';

const base: PromptTuningJob = {
  model: { tiny: 'gpt2' },
  data: { train: { rows: [{ input: 'a', target: 'b' }] } },
  runDir: 'runs/x',
};

function issues(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).issues;
  }
  throw new Error('expected a ValidationError');
}

describe('promptTuning', () => {
  it('fills every default (PromptTuningConfig, TrainingConfig, data spec)', () => {
    const spec = promptTuning(base);
    expect(spec.method).toBe('prompt_tuning');
    expect(spec.config).toEqual({ numVirtualTokens: 20, init: 'vocab', seed: 0 });
    expect(spec.task).toEqual({ type: 'generation' });
    expect(spec.training).toEqual({
      epochs: 1, batchSize: 8, gradAccumulation: 1, maxLength: 512, optimizer: 'adamw', lr: 3e-2, schedule: 'linear',
      warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, seed: 0, dtype: 'auto', evalEvery: 0, checkpointEvery: 0, logEvery: 10, evalBaseline: true,
      gradientCheckpointing: false, shardModel: false, selectBy: 'auto',
    });
    expect(spec.data.evalFraction).toBe(0);
    expect(spec.data.onBadRow).toBe('fail');
    expect(spec.runDir).toBe(resolve('runs/x'));
    expect(spec.resumeFrom).toBeUndefined();
  });

  it('returns a frozen spec (rows stay the caller’s)', () => {
    const rows = [{ input: 'a', target: 'b' }];
    const spec = promptTuning({ ...base, data: { train: { rows } } });
    expect(Object.isFrozen(spec)).toBe(true);
    expect(Object.isFrozen(spec.training)).toBe(true);
    expect(Object.isFrozen(spec.model)).toBe(true);
    expect(Object.isFrozen(rows)).toBe(false);
    expect(() => ((spec as { runDir: string }).runDir = 'y')).toThrow(TypeError);
    expect(isJobSpec(spec)).toBe(true);
    expect(isJobSpec({ ...spec })).toBe(false);
  });

  it('translates to the worker body in snake_case', () => {
    const spec = promptTuning({
      ...base,
      model: { nameOrPath: 'gpt2', trustRemoteCode: false, device: 'cpu' },
      numVirtualTokens: 8,
      init: 'text',
      initText: 'Classify:',
      task: { type: 'classification', labels: ['yes', 'no'] },
      training: { steps: 5, batchSize: 2, gradAccumulation: 2, warmupSteps: 1, logEvery: 1 },
    });
    const body = trainBody(spec, { train: { dataset: 'd' } });
    expect(body).toEqual({
      model: { name_or_path: 'gpt2', trust_remote_code: false, device: 'cpu' },
      method: 'prompt_tuning',
      method_config: { num_virtual_tokens: 8, init: 'text', init_text: 'Classify:', seed: 0 },
      task: 'classification',
      task_options: { labels: ['yes', 'no'], loss: 'lm' },
      training: {
        steps: 5, epochs: 1, batch_size: 2, grad_accumulation: 2, max_length: 512, optimizer: 'adamw', lr: 3e-2,
        schedule: 'linear', warmup_steps: 1, weight_decay: 0, max_grad_norm: 1, seed: 0, dtype: 'auto', eval_every: 0,
        checkpoint_every: 0, log_every: 1, eval_baseline: true, gradient_checkpointing: false, shard_model: false, select_by: 'auto',
      },
      run_dir: resolve('runs/x'),
      data: { train: { dataset: 'd' } },
    });
  });

  it('sends keepLast and reportTo only when given, in the worker\'s names; refuses unknown trackers', () => {
    const plain = trainBody(promptTuning(base), {})['training'] as Record<string, unknown>;
    expect(plain).not.toHaveProperty('keep_last');
    expect(plain).not.toHaveProperty('report_to');
    const set = trainBody(promptTuning({ ...base, training: { keepLast: 2, reportTo: ['tensorboard'] } }), {})['training'] as Record<string, unknown>;
    expect(set).toMatchObject({ keep_last: 2, report_to: ['tensorboard'] });
    expect(() => promptTuning({ ...base, training: { reportTo: ['wandb' as 'tensorboard'] } })).toThrow(/job\.training\.reportTo\.0: expected "tensorboard"/);
  });

  it('sends model selection in the worker\'s names, and refuses early stopping it cannot honour', () => {
    const plain = trainBody(promptTuning(base), {})['training'] as Record<string, unknown>;
    expect(plain['select_by']).toBe('auto');
    expect(plain).not.toHaveProperty('early_stopping');
    const set = trainBody(promptTuning({ ...base, training: { selectBy: 'exact_match', evalEvery: 5, earlyStopping: { patience: 3 } } }), {});
    expect(set['training']).toMatchObject({ select_by: 'exact_match', eval_every: 5, early_stopping: { patience: 3, min_delta: 0 } });
    expect(issues(() => promptTuning({ ...base, training: { earlyStopping: { patience: 3 } } }))).toEqual([
      'job.training.earlyStopping: needs evalEvery > 0: it counts evaluations without improvement',
    ]);
    expect(issues(() => promptTuning({ ...base, training: { evalEvery: 2, earlyStopping: { patience: 0 } } }))).toEqual([
      'job.training.earlyStopping.patience: must be > 0',
    ]);
    expect(issues(() => promptTuning({ ...base, training: { selectBy: '' } }))[0]).toMatch(/^job\.training\.selectBy: /);
  });

  it('leaves method_config out when resuming without method options', () => {
    const resumed = trainBody(promptTuning({ ...base, resumeFrom: 'ck.pb' }), {});
    expect(resumed['resume_from']).toBe(resolve('ck.pb'));
    expect(resumed).not.toHaveProperty('method_config');
    const checked = trainBody(promptTuning({ ...base, resumeFrom: 'ck.pb', numVirtualTokens: 4 }), {});
    expect(checked['method_config']).toEqual({ num_virtual_tokens: 4, init: 'vocab', seed: 0 });
  });

  it('names the bad field path in errors', () => {
    expect(issues(() => promptTuning({ ...base, training: { lr: 0 } }))).toEqual(['job.training.lr: must be > 0']);
    expect(issues(() => promptTuning({ ...base, numVirtualTokens: 1.5 }))).toEqual(['job.numVirtualTokens: must be an integer']);
    expect(issues(() => promptTuning({ ...base, init: 'text' }))).toEqual(["job.initText: required when init is 'text'"]);
    expect(issues(() => promptTuning({ ...base, initText: 'ignored?' }))).toEqual(["job.initText: only used when init is 'text'"]);
    expect(issues(() => promptTuning({ ...base, init: 'checkpoint' }))).toEqual(["job.initCheckpoint: required when init is 'checkpoint'"]);
    expect(issues(() => promptTuning({ ...base, training: { steps: 3, epochs: 2 } }))).toEqual(['job.training.epochs: give steps or epochs, not both']);
    expect(issues(() => promptTuning({ ...base, model: { tiny: 'gpt3' as 'gpt2' } }))[0]).toMatch(/^job\.model\.tiny: /);
    expect(issues(() => promptTuning({ ...base, model: { nameOrPath: '' } }))).toEqual(['job.model.nameOrPath: must not be empty']);
    expect(issues(() => promptTuning({ ...base, data: { train: { path: 'x' }, evalFraction: 1 } }))).toEqual(['job.data.evalFraction: must be in [0, 1)']);
    expect(issues(() => promptTuning({ ...base, data: { train: { rows: 3 as never } } }))[0]).toMatch(/^job\.data\.train\.rows: expected an array/);
    expect(issues(() => promptTuning({ ...base, task: { type: 'classification', labels: ['a'] } }))).toEqual(['job.task.labels: expected at least two labels']);
    expect(issues(() => promptTuning({ ...base, task: 'summarize' as 'generation' }))[0]).toMatch(/^job\.task: expected 'generation'/);
  });

  it('reports several problems at once, and unknown fields by name', () => {
    const found = issues(() => promptTuning({ ...base, runDir: '', numVirtualTokens: 0, trainingSteps: 3 } as PromptTuningJob));
    expect(found).toEqual(['job.runDir: must not be empty', 'job.numVirtualTokens: must be > 0', 'job.trainingSteps: unknown field']);
    expect(issues(() => promptTuning({ ...base, training: { learningRate: 1 } as never }))).toEqual(['job.training.learningRate: unknown field']);
    expect(issues(() => promptTuning(null as never))).toEqual(['job: expected an object, got null']);
  });

  it('requires model, data and runDir', () => {
    const found = issues(() => promptTuning({} as PromptTuningJob));
    expect(found.map((i) => i.split(':')[0])).toEqual(['job.model', 'job.data', 'job.runDir']);
  });

  it('types the spec by method', () => {
    expectTypeOf(promptTuning(base).method).toEqualTypeOf<'prompt_tuning'>();
    expectTypeOf(promptTuning(base).config.numVirtualTokens).toEqualTypeOf<number>();
  });
});
