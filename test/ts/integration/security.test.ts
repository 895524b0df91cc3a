/**
 * Local transport security and the remote-code switch, seen from the SDK:
 * - the default ipc socket lives in a fresh directory that only this user can enter (mode 0700,
 *   owned by us); when the tests run as root, another user (nobody) is refused at that directory;
 * - the directory is removed when the worker exits;
 * - the tcp fallback binds the loopback interface only;
 * - `trustRemoteCode` reaches the worker only as a real `true` set by the caller.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { resolvePython } from '../../../ts/src/internal/python.js';
import { WorkerProcess } from '../../../ts/src/internal/worker-process.js';
import { modelToWire } from '../../../ts/src/jobs/model-spec.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { quietLogger, venvPython } from '../helpers.js';

const NOBODY = 65534;

async function startWorker(transport: 'ipc' | 'tcp') {
  return WorkerProcess.start({ python: resolvePython(venvPython), transport, startTimeoutMs: 60_000, log: quietLogger() });
}

/** Runs `script` with node as user nobody; undefined when this process cannot switch users. */
function asNobody(script: string, arg: string): { status: number | null; stderr: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const run = (s: string) => spawnSync(process.execPath, ['-e', s, arg], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 });
  const control = run('process.exit(0)'); // node itself must run as nobody, or a refusal proves nothing
  if (control.error || control.status !== 0) return undefined;
  const result = run(script);
  return { status: result.status, stderr: result.stderr };
}

describe('ipc transport', () => {
  it('puts the socket in a fresh 0700 directory of this user, removed on exit', async () => {
    const { process: worker, ready } = await startWorker('ipc');
    let dir = '';
    try {
      expect(ready.endpoint).toMatch(/^ipc:\/\//);
      const socket = ready.endpoint.slice('ipc://'.length);
      dir = dirname(socket);
      expect(dirname(dir)).toBe(tmpdir());
      const st = lstatSync(dir);
      expect(st.isDirectory() && !st.isSymbolicLink()).toBe(true);
      expect((st.mode & 0o777).toString(8)).toBe('700');
      expect(st.uid).toBe(process.getuid!());
      expect(statSync(socket).isSocket()).toBe(true);

      // Another user cannot reach the socket: even looking it up in the directory is refused (so the
      // socket's own mode, which follows the worker's umask, does not matter), and so is connecting.
      const probe = asNobody(
        `try { require('fs').statSync(process.argv[1]); console.error('stat ok') } catch (e) { console.error('stat', e.code) }
         require('net').connect(process.argv[1]).on('connect', () => process.exit(0)).on('error', (e) => { console.error('connect', e.code); process.exit(3); })`,
        socket,
      );
      if (probe !== undefined) {
        expect(probe.stderr).toContain('stat EACCES');
        expect(probe.stderr).toContain('connect EACCES');
        expect(probe.status).toBe(3);
      }
    } finally {
      worker.kill('SIGTERM');
      await worker.exited;
    }
    await expect.poll(() => existsSync(dir), { timeout: 5_000 }).toBe(false);
  });
});

describe('tcp transport', () => {
  it('binds the loopback interface only', async () => {
    const { process: worker, ready } = await startWorker('tcp');
    try {
      expect(ready.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      worker.kill('SIGTERM');
      await worker.exited;
    }
  });
});

describe('trustRemoteCode', () => {
  const job = (model: unknown) => ({ model, data: { train: { path: 'x.jsonl' } }, runDir: 'runs/x' }) as never;

  it('is absent from the worker body unless the caller sets it, so the worker default (false) applies', () => {
    expect(modelToWire({ nameOrPath: 'gpt2' })).not.toHaveProperty('trust_remote_code');
    expect(modelToWire({ nameOrPath: 'gpt2', trustRemoteCode: false })).toMatchObject({ trust_remote_code: false });
    expect(modelToWire({ nameOrPath: 'gpt2', trustRemoteCode: true })).toMatchObject({ trust_remote_code: true });
    expect(promptTuning(job({ nameOrPath: 'gpt2' })).model).not.toHaveProperty('trustRemoteCode');
  });

  it.each(['true', 1, 'yes', {}])('refuses %j: only a real boolean turns it on', (value) => {
    expect(() => promptTuning(job({ nameOrPath: 'gpt2', trustRemoteCode: value }))).toThrow(ValidationError);
    expect(() => promptTuning(job({ nameOrPath: 'gpt2', trustRemoteCode: value }))).toThrow(/job\.model\.trustRemoteCode/);
  });

  it('cannot be set on tiny models (no remote code to run)', () => {
    expect(() => promptTuning(job({ tiny: 'gpt2', trustRemoteCode: true }))).toThrow(/job\.model\.trustRemoteCode: unknown field/);
  });
});
