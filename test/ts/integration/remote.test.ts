/**
 * Softprompt.connect against `softprompt-worker serve` on loopback TCP with CURVE: listed keys get in
 * (hello, ping, embed on a tiny model), an unlisted or wrong key fails the handshake with a clear
 * WorkerStartError, no keys is refused before connecting; a dead or silent server fails the open call
 * with ConnectionLostError and the next call works once it is back (prompts replayed on a restarted
 * one); two clients share a worker with prompts of their own unless shared; a sweep trains with sp.trainMany.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { ConnectionLostError, RemoteError, ValidationError, WorkerStartError } from '../../../ts/src/core/errors.js';
import type { ConnectOptions } from '../../../ts/src/core/connect-options.js';
import { loadKeys, parseConnectOptions } from '../../../ts/src/internal/connect-options.js';
import { Prompts } from '../../../ts/src/inference/prompts.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { workerPythonPath } from '../../../ts/src/internal/python.js';
import { RemoteLink } from '../../../ts/src/internal/remote.js';
import { Rpc } from '../../../ts/src/internal/rpc.js';
import { Transport } from '../../../ts/src/internal/transport.js';
import { fixtures, quietLogger, venvPython } from '../helpers.js';
import { type Keys, type Served, kill, makeKeys, serve } from './served-worker.js';

const model = { tiny: 'gpt2' as const };

/** A Z85 key of a key file `softprompt-worker keys new` wrote (`public-key = "..."`). */
const keyField = (file: string, name: 'public-key' | 'secret-key') => new RegExp(`${name} = "(.{40})"`).exec(readFileSync(file, 'utf8'))![1]!;
type Checkpoints = Record<'pt' | 'px' | 'sx' | 'pa', string>;

async function writePrompts(dir: string): Promise<Checkpoints> {
  const { stdout } = await promisify(execFile)(venvPython, [join(fixtures, 'write_prompts.py'), dir, JSON.stringify(model)], {
    env: { ...process.env, PYTHONPATH: workerPythonPath(), OMP_NUM_THREADS: '1' },
  });
  return JSON.parse(stdout) as Checkpoints;
}

describe('remote worker over CURVE (softprompt-worker serve)', () => {
  let keys: Keys;
  let server: Served;
  let paths: Checkpoints;
  const open: Softprompt[] = [];

  const connect = async (who: 'alice' | 'bob' | 'mallory', extra: Parameters<typeof Softprompt.connect>[1] = {}) => {
    const sp = await Softprompt.connect(server.endpoint, { keys: { dir: keys.dir(who), name: who }, logger: quietLogger(), ...extra });
    open.push(sp);
    return sp;
  };

  /** The pieces Softprompt.connect assembles, for the test ops (test_sleep) the public API lacks. */
  const remote = async (who: 'alice' | 'bob', extra: ConnectOptions = {}) => {
    const options = parseConnectOptions(server.endpoint, { keys: { dir: keys.dir(who), name: who }, ...extra });
    const link = await RemoteLink.connect(server.endpoint, options, await loadKeys(options.keys), quietLogger());
    const rpc = new Rpc(link, undefined);
    open.push({ close: () => link.close() } as Softprompt);
    return { link, rpc, prompts: new Prompts(rpc) };
  };

  beforeAll(async () => {
    keys = await makeKeys();
    [server, paths] = await Promise.all([serve(keys), writePrompts(keys.root)]);
  });
  afterAll(async () => {
    await Promise.all(open.map((sp) => sp.close()));
    if (server) await kill(server);
    if (keys) rmSync(keys.root, { recursive: true, force: true });
  });

  it('a listed client key gets in: hello, ping and embed, with the same API as a local worker', async () => {
    const sp = await connect('alice');
    expect(sp.workerPid).toBe(server.pid);
    expect(sp.capabilities.methods).toContain('suffix_tuning');
    expect(await sp.ping()).toBeGreaterThan(0);
    const e = await sp.embed({ model, texts: ['a cat', 'a dog'] });
    expect([e.rows, e.source]).toEqual([2, 'base']);
  });

  it('trains a sweep on the served worker with sp.trainMany', async () => {
    const sp = await connect('alice');
    const rows = ['abc', 'kite', 'moon', 'sun'].map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));
    const runs = join(keys.root, 'sweep');
    const jobs = sp.trainMany([0.01, 0.1].map((lr) =>
      promptTuning({ model, numVirtualTokens: 2, data: { train: { rows } }, training: { steps: 3, batchSize: 2, lr }, runDir: join(runs, `lr-${lr}`) })));
    const results = await Promise.all(jobs.map((job) => job.result()));
    expect(results.map((r) => [r.status, r.summary.steps])).toEqual([['completed', 3], ['completed', 3]]);
    expect(results[1]!.checkpoint).toBe(join(runs, 'lr-0.1', 'checkpoints', 'step-00000003.pb'));
  });

  it('an unlisted key fails the handshake at once, with a WorkerStartError that says so', async () => {
    const start = Date.now();
    const err = await connect('mallory', { connectTimeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toMatch(/refused this client's key \(authentication failed/);
    expect(Date.now() - start).toBeLessThan(10_000); // ZeroMQ reports the refusal; no waiting for the timeout
  });

  it('the refusal is reported even when it comes before anyone listens (libzmq reports it once, never retries)', async () => {
    // The race behind a refusal that went unreported on a loaded machine: the handshake finished before the
    // link began watching. Here the handshake surely finishes first (1 s), yet the queued report arrives.
    const dir = keys.dir('mallory');
    const transport = Transport.connect(
      server.endpoint,
      () => {},
      { curveServerKey: keyField(join(dir, 'server.key'), 'public-key'), curvePublicKey: keyField(join(dir, 'mallory.key_secret'), 'public-key'),
        curveSecretKey: keyField(join(dir, 'mallory.key_secret'), 'secret-key') },
      true,
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const refused = await new Promise<number>((resolve, reject) => {
        transport.events.on('handshake:error:auth', (e) => resolve(e.error.status ?? 0));
        setTimeout(() => reject(new Error('no handshake:error:auth event within 5 s')), 5_000);
      });
      expect(refused).toBe(400); // ZAP's "denied"
    } finally {
      transport.close(new Error('test over'));
    }
  });

  it("a wrong server key (the server's secret never matches) times out: authentication failed or unreachable", async () => {
    const alice = { dir: keys.dir('alice'), name: 'alice' };
    const field = keyField;
    const mallory = join(keys.dir('mallory'), 'mallory.key_secret');
    const err = await Softprompt.connect(server.endpoint, {
      keys: {
        serverPublicKey: field(mallory, 'public-key'), // not the server's key
        clientPublicKey: field(join(alice.dir, 'alice.key_secret'), 'public-key'),
        clientSecretKey: field(join(alice.dir, 'alice.key_secret'), 'secret-key'),
      },
      connectTimeoutMs: 1_000,
      logger: quietLogger(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toMatch(/within 1000 ms \(connectTimeoutMs\): authentication failed or the server is unreachable/);
  });

  it('refuses TCP without keys, and bad key files, before connecting', async () => {
    await expect(Softprompt.connect(server.endpoint)).rejects.toThrow(/options.keys: required for a tcp:\/\/ endpoint/);
    await expect(Softprompt.connect('http://x')).rejects.toBeInstanceOf(ValidationError);
    await expect(Softprompt.connect(server.endpoint, { keys: { dir: keys.dir('alice'), name: 'nobody' } })).rejects.toThrow(
      /cannot read .*nobody.key_secret/,
    );
    await expect(Softprompt.connect(server.endpoint, { keys: { serverPublicKey: 'x', clientPublicKey: 'y', clientSecretKey: 'z' } })).rejects.toThrow(
      /options.keys.serverPublicKey: expected a 40-character Z85 CURVE key/,
    );
  });

  it('two clients share the worker: prompts are per client unless loaded with shared: true', async () => {
    const [alice, bob] = await Promise.all([connect('alice'), connect('bob')]);
    await alice.prompts.load('mine', paths.pt, { model });
    expect((await alice.prompts.list()).map((p) => [p.name, p.shared])).toEqual([['mine', false]]);
    expect(await bob.prompts.list()).toEqual([]);
    await expect(bob.generate({ prompt: 'mine', inputs: ['x'], maxNewTokens: 1 }).result()).rejects.toMatchObject({ code: 'not_found' });

    const info = await alice.prompts.load('common', paths.px, { model, shared: true });
    expect(info).toMatchObject({ name: 'common', shared: true });
    expect((await bob.prompts.list()).map((p) => [p.name, p.shared])).toEqual([['common', true]]);
    const { outputs } = await bob.generate({ prompt: 'common', inputs: ['x'], maxNewTokens: 2 }).result();
    expect(outputs).toHaveLength(1);
    await alice.prompts.unload('common');
    expect(await bob.prompts.list()).toEqual([]);
  });

  it('a killed server fails the open call with ConnectionLostError; restarted on its port, the next call works', async () => {
    const { link, rpc, prompts } = await remote('alice', { reconnectWaitMs: 60_000 });
    await prompts.load('kept', paths.pt, { model });
    const sleeping = rpc.request('test_sleep', { s: 60 }).catch((e: unknown) => e);
    await rpc.request('ping', {}); // the sleep has reached the worker
    const port = server.endpoint.split(':').pop()!;
    await kill(server);
    const err = await sleeping;
    expect(err).toBeInstanceOf(ConnectionLostError);
    expect(err).toMatchObject({ code: 'connection_lost', endpoint: server.endpoint });

    expect(link.current).toBeUndefined();
    const waiting = prompts.list(); // made while the server is down: waits for the reconnect
    server = await serve(keys, `tcp://127.0.0.1:${port}`);
    const listed = await waiting; // the restarted worker got this client's prompt again first
    expect(listed.map((p) => p.name)).toEqual(['kept']);
    expect(link.current?.hello.pid).toBe(server.pid);
    await expect(rpc.request('ping', {})).resolves.toBeDefined();
  });

  it('a hello the restarted server leaves unanswered past connectTimeoutMs is asked again, not waited on forever', async () => {
    const { link, rpc } = await remote('bob', { connectTimeoutMs: 1_000, reconnectWaitMs: 30_000 });
    const port = server.endpoint.split(':').pop()!;
    await kill(server);
    // The restarted worker answers this client's first hello after 3 s: the link gives up on it at 1 s, while
    // the connection stays up, so no new handshake would ever prompt another hello.
    server = await serve(keys, `tcp://127.0.0.1:${port}`, [], { SOFTPROMPT_TEST_SLOW_HELLO: `${link.clientId}:3` });
    await expect(rpc.request('ping', {})).resolves.toBeDefined(); // made while the link is down: waits for it
    expect(link.current?.hello.pid).toBe(server.pid);
  });

  it('a silent server (SIGSTOP) is noticed by heartbeats; after SIGCONT the next call works', async () => {
    const { rpc } = await remote('bob', { heartbeatMs: 250 });
    const sleeping = rpc.request('test_sleep', { s: 60 }).catch((e: unknown) => e);
    await rpc.request('ping', {});
    server.child.kill('SIGSTOP');
    try {
      const start = Date.now();
      const err = await sleeping;
      expect(err).toBeInstanceOf(ConnectionLostError);
      expect(Date.now() - start).toBeLessThan(5_000); // 3 heartbeats of 250 ms, plus scheduling
    } finally {
      server.child.kill('SIGCONT');
    }
    await expect(rpc.request('ping', {})).resolves.toBeDefined();
  });
});
