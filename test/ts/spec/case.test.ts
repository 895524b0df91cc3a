import { describe, expect, it } from 'vitest';
import { camelCase, snakeCase, toCamel, toSnake } from '../../../ts/src/spec/case.js';

describe('case translation', () => {
  it('maps names both ways', () => {
    expect(snakeCase('numVirtualTokens')).toBe('num_virtual_tokens');
    expect(camelCase('num_virtual_tokens')).toBe('numVirtualTokens');
    expect(camelCase('tokens_per_s')).toBe('tokensPerS');
    expect(snakeCase(camelCase('tokens_per_s'))).toBe('tokens_per_s');
  });

  it('translates nested objects and arrays, drops undefined, keeps data maps', () => {
    expect(toSnake({ aB: { cD: [{ eF: 1 }] }, gone: undefined, overrides: { n_layer: 1, keepMe: 2 } }, ['overrides'])).toEqual({
      a_b: { c_d: [{ e_f: 1 }] },
      overrides: { n_layer: 1, keepMe: 2 },
    });
    expect(toCamel({ event: 'eval', step: 3, metrics: { token_accuracy: 0.5 } }, ['metrics'])).toEqual({
      event: 'eval',
      step: 3,
      metrics: { token_accuracy: 0.5 },
    });
  });

  it('leaves typed arrays and class instances alone', () => {
    const bytes = new Uint8Array([1]);
    expect((toSnake({ someBytes: bytes }) as { some_bytes: Uint8Array }).some_bytes).toBe(bytes);
  });
});
