/**
 * Local transport security and the remote-code switch, seen from the SDK:
 * - the default ipc socket lives in a fresh directory that only this user can enter (mode 0700,
 *   owned by us, under <tmpdir>/sp-<uid>); when the tests run as root, another user (nobody) is refused
 *   at that directory;
 * - the directory is removed when the worker exits;
 * - transport 'tcp' binds the loopback interface only, with CURVE keys made for that worker: a client
 *   without them (another user's, when the tests run as root) gets no answer;
 * - `trustRemoteCode` reaches the worker only as a real `true` set by the caller.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Dealer, curveKeyPair } from 'zeromq';
import { encodeMessage } from '../../../ts/src/internal/wire.js';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { resolvePython } from '../../../ts/src/internal/python.js';
import { WorkerProcess } from '../../../ts/src/internal/worker-process.js';
import { modelToWire } from '../../../ts/src/spec/model-spec.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { quietLogger, venvPython } from '../helpers.js';

const NOBODY = 65534;
const require = createRequire(import.meta.url);

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
      expect(dirname(dir)).toBe(join(tmpdir(), `sp-${process.getuid!()}`));
      expect((lstatSync(dirname(dir)).mode & 0o777).toString(8)).toBe('700');
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

/** Sends `ping` from a DEALER with `options`; true when a reply came within `ms`. */
async function pingAnswered(endpoint: string, options: ConstructorParameters<typeof Dealer>[0], ms: number): Promise<boolean> {
  const socket = new Dealer({ linger: 0, receiveTimeout: ms, ...options });
  try {
    socket.connect(endpoint);
    await socket.send(encodeMessage({ v: 1, id: 1, kind: 'request', op: 'ping', body: {}, tensors: [] }));
    await socket.receive();
    return true;
  } catch {
    return false;
  } finally {
    socket.close();
  }
}

describe('tcp transport', () => {
  it('binds the loopback interface only, with CURVE: a client without the worker\'s keys gets no answer', async () => {
    const { process: worker, ready } = await startWorker('tcp');
    try {
      expect(ready.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      const keys = ready.curve!;
      expect(worker.pid).toBeDefined();
      expect(await pingAnswered(ready.endpoint, { curveServerKey: keys.serverPublicKey, curvePublicKey: keys.clientPublicKey, curveSecretKey: keys.clientSecretKey }, 10_000)).toBe(true);
      expect(await pingAnswered(ready.endpoint, {}, 1_500)).toBe(false); // plain TCP
      const stranger = curveKeyPair(); // CURVE, but a key the worker never saw
      expect(await pingAnswered(ready.endpoint, { curveServerKey: keys.serverPublicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey }, 1_500)).toBe(false);
      // another local user (nobody) connecting without the keys: refused as well
      const zmqPath = require.resolve('zeromq');
      const probe = asNobody(
        `const { Dealer } = require(${JSON.stringify(zmqPath)});
         const s = new Dealer({ linger: 0, receiveTimeout: 1500 }); s.connect(process.argv[1]);
         s.send([Buffer.from(${JSON.stringify(Buffer.from(encodeMessage({ v: 1, id: 1, kind: "request", op: "ping", body: {}, tensors: [] })[0]!).toString('base64'))}, 'base64')])
          .then(() => s.receive()).then(() => { console.error('answered'); process.exit(0); }, (e) => { console.error('refused', e.code); process.exit(3); });`,
        ready.endpoint,
      );
      if (probe !== undefined) {
        expect(probe.stderr).toContain('refused');
        expect(probe.status).toBe(3);
      }
      // the keys never appear in the worker's argv or environment
      const cmdline = readFileSync(`/proc/${worker.pid}/cmdline`, 'utf8');
      expect(cmdline).toContain('--curve-stdin');
      expect(cmdline).not.toContain(keys.clientPublicKey);
      expect(readFileSync(`/proc/${worker.pid}/environ`, 'utf8')).not.toContain(keys.clientPublicKey);
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
