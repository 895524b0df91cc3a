/** Shared setup for the integration tests: the real worker plus the TS test ops. */
import { fileURLToPath } from 'node:url';
import type { StartOptions } from '../../ts/src/core/start-options.js';
import type { LogFunction } from '../../ts/src/core/logger.js';

export const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const venvPython = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));

/** Collects log lines instead of printing them; errors still reach the test output. */
export function quietLogger(lines: string[] = []): LogFunction {
  return (level, message) => {
    lines.push(`${level}: ${message}`);
  };
}

/** Options for a real worker that also serves test_count / test_sleep / test_fail. */
export function testWorkerOptions(extra: StartOptions = {}): StartOptions {
  return {
    logger: quietLogger(),
    ...extra,
    env: { SOFTPROMPT_EXTRA_OP_MODULES: 'ts_test_ops', PYTHONPATH: fixtures, ...extra.env },
  };
}

/** Bytes of a typed array, for bit-exact comparison (NaN payloads included). */
export function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
