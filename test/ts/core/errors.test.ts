import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AbortError,
  REMOTE_ERROR_CODES,
  RemoteError,
  type RemoteErrorCode,
  SoftpromptError,
  WorkerCrashedError,
} from '../../../ts/src/core/errors.js';

describe('errors', () => {
  it('derives remote codes from the generated ErrorCode enum', () => {
    expect([...REMOTE_ERROR_CODES]).toEqual([
      'malformed_message', 'protocol_version_mismatch', 'unknown_op', 'invalid_argument', 'not_found',
      'too_large', 'cancelled', 'out_of_memory', 'checkpoint_invalid', 'dependency_missing', 'busy', 'internal', 'storage',
    ]);
    expectTypeOf<'not_found'>().toExtend<RemoteErrorCode>();
    expectTypeOf<'nope'>().not.toExtend<RemoteErrorCode>();
  });

  it('keeps one root, a readonly code, the class name and the cause', () => {
    const cause = new Error('boom');
    const err = new RemoteError('not_found', 'no job 7', 'train', { job: 7 }, { cause });
    expect(err).toBeInstanceOf(SoftpromptError);
    expect(err.name).toBe('RemoteError');
    expect(err.code).toBe('not_found');
    expect(err.message).toBe('train failed (not_found): no job 7');
    expect(err.details).toEqual({ job: 7 });
    expect(err.cause).toBe(cause);
    expect(new AbortError()).toBeInstanceOf(SoftpromptError);
  });

  it('WorkerCrashedError says how the worker ended and shows its stderr', () => {
    const err = new WorkerCrashedError(null, 'SIGKILL', 'line 1\nline 2');
    expect(err.message).toContain('killed by SIGKILL');
    expect(err.message).toContain('line 2');
    expect(err).toMatchObject({ exitCode: null, signal: 'SIGKILL', code: 'worker_crashed' });
  });
});
