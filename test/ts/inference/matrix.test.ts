import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { Matrix, cosineSimilarity, dot } from '../../../ts/src/inference/matrix.js';

describe('Matrix', () => {
  const m = new Matrix(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3);

  it('views rows and elements in place', () => {
    expect(Array.from(m.row(1))).toEqual([4, 5, 6]);
    expect(m.row(1).buffer).toBe(m.data.buffer);
    expect(m.at(0, 2)).toBe(3);
    expect(m.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect([...m].length).toBe(2);
  });

  it('refuses a wrong size and out-of-range indices', () => {
    expect(() => new Matrix(new Float32Array(5), 2, 3)).toThrow(ValidationError);
    expect(() => m.row(2)).toThrow(RangeError);
    expect(() => m.at(0, 3)).toThrow(RangeError);
  });

  it('computes dot products and cosine similarity', () => {
    expect(dot([1, 2], [3, 4])).toBe(11);
    expect(cosineSimilarity([1, 0], [0, 2])).toBe(0);
    expect(cosineSimilarity([0, 0], [1, 1])).toBe(0);
    expect(m.cosine(0, 0)).toBeCloseTo(1, 6);
    expect(() => dot([1], [1, 2])).toThrow(RangeError);
  });
});
