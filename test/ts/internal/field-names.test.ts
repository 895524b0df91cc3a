/** Worker error messages are shown with the names the caller wrote (issue 14 item 8). */
import { describe, expect, it } from 'vitest';
import { userFieldNames } from '../../../ts/src/internal/field-names.js';
import { remoteError } from '../../../ts/src/internal/transport.js';

describe('userFieldNames', () => {
  it.each([
    ["/d/train.jsonl:4: label 'maybe' is not one of task_options.labels ['neg', 'pos'] (set data.on_bad_row='skip' to skip bad rows)",
      "/d/train.jsonl:4: label 'maybe' is not one of task.labels ['neg', 'pos'] (set data.onBadRow='skip' to skip bad rows)"],
    ["model.name_or_path: cannot load 'x'", "model.nameOrPath: cannot load 'x'"],
    ['training.grad_accumulation: must be >= 1', 'training.gradAccumulation: must be >= 1'],
    ['method_config.num_virtual_tokens: too large', 'numVirtualTokens: too large'],
    ["run_dir: '/r' is in use", "runDir: '/r' is in use"],
  ])('%s', (wire, user) => {
    expect(userFieldNames(wire)).toBe(user);
  });

  it('leaves paths, constants and names without an underscore alone', () => {
    for (const text of ['/home/a/data.on_bad_row/x', 'data.MAX_LINE_BYTES', 'data.train row 3', 'training.lr', '/x/run_dir: y', 'my_run_dir: z']) {
      expect(userFieldNames(text)).toBe(text);
    }
  });

  it('applies to errors from the worker', () => {
    const error = remoteError({ v: 1, id: 1, kind: 'error', op: 'train', body: { code: 'invalid_argument', message: 'data.on_bad_row: bad' }, tensors: [] });
    expect(error.message).toBe('train failed (invalid_argument): data.onBadRow: bad');
  });
});
