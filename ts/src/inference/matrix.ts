/**
 * A dense row-major f32 matrix over one `Float32Array`, e.g. the embeddings of many texts. Rows are
 * views (`subarray`), never copies, so a matrix read from a worker reply stays in the received frame.
 */
import { ValidationError } from '../core/errors.js';

export class Matrix {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns (the embedding dimension). */
  readonly cols: number;
  /** The elements, row after row: element `(i, j)` is `data[i * cols + j]`. */
  readonly data: Float32Array;

  /** Wraps `data` (not copied) as a `rows × cols` matrix. */
  constructor(data: Float32Array, rows: number, cols: number) {
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0 || data.length !== rows * cols) {
      throw new ValidationError(`matrix: ${rows} × ${cols} needs ${rows * cols} elements, got ${data.length}`);
    }
    this.data = data;
    this.rows = rows;
    this.cols = cols;
  }

  /** Row `i` as a view into {@link data} (no copy). Throws a RangeError outside `0..rows-1`. */
  row(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw new RangeError(`row ${i} is outside 0..${this.rows - 1}`);
    return this.data.subarray(i * this.cols, (i + 1) * this.cols);
  }

  /** Element `(i, j)`. */
  at(i: number, j: number): number {
    if (!Number.isInteger(j) || j < 0 || j >= this.cols) throw new RangeError(`column ${j} is outside 0..${this.cols - 1}`);
    return this.row(i)[j]!;
  }

  /** Cosine similarity of rows `i` and `j`. */
  cosine(i: number, j: number): number {
    return cosineSimilarity(this.row(i), this.row(j));
  }

  /** The rows as views, in order. */
  *[Symbol.iterator](): IterableIterator<Float32Array> {
    for (let i = 0; i < this.rows; i++) yield this.row(i);
  }

  /** A copy as nested arrays (for JSON or printing). */
  toArray(): number[][] {
    return Array.from(this, (r) => Array.from(r));
  }
}

/** Dot product of two vectors of the same length. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length: ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += a[k]! * b[k]!;
  return sum;
}

/** Cosine similarity `a·b / (|a| |b|)`; 0 when either vector is zero. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const norms = Math.sqrt(dot(a, a) * dot(b, b));
  return norms === 0 ? 0 : dot(a, b) / norms;
}
