import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';

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
    [{ workerPath: 'python' }, 'options.workerPath: expected an absolute path'],
    [{ workerPath: '/nonexistent/app.asar.unpacked/python' }, 'options.workerPath: no softprompt_worker package in this folder'],
  ])('names the bad field: %j', (options, message) => {
    const run = () => parseStartOptions(options);
    expect(run).toThrow(ValidationError);
    expect(run).toThrow(message);
  });

  it('accepts a workerPath that holds softprompt_worker/', () => {
    const workerPath = fileURLToPath(new URL('../../../python', import.meta.url));
    expect(parseStartOptions({ workerPath }).workerPath).toBe(workerPath);
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
