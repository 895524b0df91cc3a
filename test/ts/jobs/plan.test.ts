/** `sp.plan` without a worker: sizes, option validation, the request body, the reply's decoding, the CLI's table and arguments. */
import { describe, expect, it } from 'vitest';
import { parse } from '../../../ts/src/cli/args.js';
import { formatBytes, formatPlan, plan as planCommand } from '../../../ts/src/cli/commands/plan.js';
import { EXIT } from '../../../ts/src/cli/exit-codes.js';
import { ProtocolError, ValidationError } from '../../../ts/src/core/errors.js';
import { decodePlan, parseBytes, planBody } from '../../../ts/src/jobs/plan.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';
import type { JobSpec } from '../../../ts/src/jobs/spec.js';

const GIB = 2 ** 30;
const spec = promptTuning({
  model: { tiny: 'llama' }, numVirtualTokens: 8, data: { train: { rows: [{ input: 'a', target: 'b' }] } },
  training: { batchSize: 4, maxLength: 128 }, runDir: '/tmp/plan-test',
});

const REPLY = {
  fits: false, peak_bytes: 3 * GIB, budget_bytes: 2 * GIB, budget_source: 'given', device: 'cuda',
  breakdown: { weights: GIB, soft_params: 10, gradients: 10, optimizer: 20, activations: GIB - 40, logits: 0, other: 0, cuda_reserve: GIB },
  settings: { method: 'prompt_tuning', batch_size: 4, seq: 128, seq_field: 'training.max_length', virtual_tokens: 8, negatives: 0,
    gradient_checkpointing: false, quantization: null, weights_dtype: 'bf16', compute_dtype: 'bf16', optimizer: 'adamw',
    frozen_params: 1, trainable_params: 5, layers: 2, hidden: 64, vocab: 263 },
  longest_seq: 60,
  suggestions: [{ change: { 'training.gradient_checkpointing': true }, peak_bytes: 2 * GIB - 1, fits: true, text: 'turn on training.gradient_checkpointing' }],
};

describe('parseBytes', () => {
  it('reads binary and decimal units, any case, with or without a space', () => {
    expect(parseBytes('24GiB')).toBe(24 * GIB);
    expect(parseBytes('80GB')).toBe(80e9);
    expect(parseBytes('80gb')).toBe(80e9);
    expect(parseBytes('1.5 TiB')).toBe(1.5 * 2 ** 40);
    expect(parseBytes('512MiB')).toBe(512 * 2 ** 20);
    expect(parseBytes('16000000000')).toBe(16e9);
    expect(parseBytes(1024)).toBe(1024);
  });
  it('refuses what is not a positive size, naming the option', () => {
    for (const bad of ['', '24 GiBs', 'GiB', '-1GB', '0', '24XB', 'lots']) expect(() => parseBytes(bad, '--gpu')).toThrow(/--gpu: expected a size/);
    expect(() => parseBytes(0)).toThrow(ValidationError);
    expect(() => parseBytes(1.5)).toThrow(/whole number/);
  });
});

describe('planBody', () => {
  it("is the job's worker fields plus the budget, without data", () => {
    const body = planBody(spec, { gpu: '24GiB', device: 'cuda' });
    expect(body).toMatchObject({ method: 'prompt_tuning', task: 'generation', gpu_bytes: 24 * GIB, device: 'cuda' });
    expect((body['training'] as Record<string, unknown>)['batch_size']).toBe(4);
    expect(body).not.toHaveProperty('data');
    expect(planBody(spec)).not.toHaveProperty('gpu_bytes');
  });
  it('sends training.memoryCheck only when it is set', () => {
    const off = promptTuning({ model: { tiny: 'llama' }, data: { train: { rows: [{ input: 'a', target: 'b' }] } }, training: { memoryCheck: false }, runDir: '/tmp/plan-test' });
    expect((planBody(off)['training'] as Record<string, unknown>)['memory_check']).toBe(false);
    expect(planBody(spec)['training']).not.toHaveProperty('memory_check');
    expect(() => promptTuning({ model: { tiny: 'llama' }, data: { train: { rows: [] } }, training: { memoryCheck: 'no' as never }, runDir: '/tmp/x' })).toThrow(/memoryCheck/);
  });
  it('takes the hard negatives from inline rows, unless given', () => {
    const suffix = suffixTuning({
      model: { tiny: 'llama' }, runDir: '/tmp/plan-test',
      data: { train: { rows: [{ query: 'q', positive: 'p', negatives: ['a', 'b', 'c'] }, { query: 'q', positive: 'p' }] } },
    });
    expect(planBody(suffix)['negatives']).toBe(3);
    expect(planBody(suffix, { negatives: 1 })['negatives']).toBe(1);
    expect(planBody(spec)).not.toHaveProperty('negatives');
  });
  it('validates its options with the field named', () => {
    expect(() => planBody(spec, { gpu: 'big' })).toThrow(/options.gpu: expected a size/);
    expect(() => planBody(spec, { negatives: -1 })).toThrow(ValidationError);
    expect(() => planBody(spec, { device: 'tpu' as 'cpu' })).toThrow(/device/);
    expect(() => planBody(spec, { colour: 1 } as never)).toThrow(ValidationError);
    expect(() => planBody({ method: 'prompt_tuning' } as unknown as JobSpec)).toThrow(/not a job spec/);
  });
});

describe('decodePlan', () => {
  it('turns the reply into camelCase, keeping suggestion paths as the worker wrote them', () => {
    const p = decodePlan(REPLY);
    expect(p.fits).toBe(false);
    expect(p.breakdown.cudaReserve).toBe(GIB);
    expect(p.settings.seqField).toBe('training.max_length');
    expect(p.suggestions[0]!.change).toEqual({ 'training.gradient_checkpointing': true });
    expect(decodePlan({ ...REPLY, fits: null, budget_bytes: null, budget_source: null, longest_seq: null }).fits).toBeUndefined();
  });
  it('a malformed reply is a ProtocolError', () => {
    expect(() => decodePlan({ ...REPLY, peak_bytes: 'lots' })).toThrow(ProtocolError);
  });
});

describe('softprompt plan', () => {
  it('parses --gpu sizes and has its own exit code for "does not fit"', () => {
    const args = parse(['job.yaml', '--gpu', '24GiB', '--json'], planCommand.options, planCommand.positionals, 'plan');
    expect(parseBytes(args.string('gpu')!, '--gpu')).toBe(24 * GIB);
    expect(parseBytes(parse(['job.yaml', '--gpu', '80GB'], planCommand.options, planCommand.positionals, 'plan').string('gpu')!)).toBe(80e9);
    expect(EXIT.doesNotFit).toBe(4);
    expect(planCommand.description).toContain('4 when it does not');
  });
  it('prints the parts, the verdict and the changes that fit', () => {
    const text = formatPlan(decodePlan(REPLY), 'job.yaml');
    expect(text).toContain('prompt_tuning, batch 4 × 128 tokens');
    expect(text).toMatch(/estimated peak\s+3\.0 GiB/);
    expect(text).toMatch(/budget \(--gpu\)\s+2\.0 GiB/);
    expect(text).toContain('does not fit: 1.0 GiB over');
    expect(text).toContain('fits:    turn on training.gradient_checkpointing');
    expect(formatBytes(512 * 2 ** 20)).toBe('512.0 MiB');
  });
});
