import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AbortError,
  REMOTE_ERROR_CODES,
  RemoteError,
  type RemoteErrorCode,
  SoftpromptError,
  ValidationError,
  WorkerCrashedError,
} from '../../../ts/src/core/errors.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';

describe('errors', () => {
  it('derives remote codes from the generated ErrorCode enum', () => {
    expect([...REMOTE_ERROR_CODES]).toEqual([
      'malformed_message', 'protocol_version_mismatch', 'unknown_op', 'invalid_argument', 'not_found',
      'too_large', 'cancelled', 'out_of_memory', 'checkpoint_invalid', 'dependency_missing', 'busy', 'internal',
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

describe('start options', () => {
  it('applies defaults', () => {
    const o = parseStartOptions(undefined);
    expect(o).toMatchObject({ transport: 'ipc', startTimeoutMs: 120_000, restart: { maxRestarts: 3, backoffMs: 500 } });
  });

  it.each([
    [{ startTimeoutMs: '5' }, 'options.startTimeoutMs: expected number, received string'],
    [{ workerTimeoutMs: 5 }, 'options.workerTimeoutMs: unknown field'],
    [{ transport: 'udp' }, 'options.transport:'],
    [{ restart: { maxRestarts: -1 } }, 'options.restart.maxRestarts:'],
    [{ env: { A: 1 } }, 'options.env.A: expected string'],
    [{ logger: { info() {} } }, 'options.logger: expected a function'],
  ])('names the bad field: %j', (options, message) => {
    const run = () => parseStartOptions(options);
    expect(run).toThrow(ValidationError);
    expect(run).toThrow(message);
  });

  it('lists every problem', () => {
    try {
      parseStartOptions({ python: 3, startTimeoutMs: -1 });
      expect.unreachable();
    } catch (err) {
      expect((err as ValidationError).issues).toHaveLength(2);
      expect((err as ValidationError).code).toBe('validation');
    }
  });
});
