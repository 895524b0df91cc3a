/**
 * The CLI's warm worker: started on demand by the first command, reused by the next ones, shared by
 * concurrent first commands (one daemon), stopped by `worker stop`, by its idle timeout, and replaced
 * after its daemon was killed; `--no-warm` and `--connect` (a served worker, CURVE keys) bypass it.
 * Each test uses a cache folder of its own (SOFTPROMPT_CACHE_DIR).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Keys, type Served, kill, makeKeys, serve } from '../integration/served-worker.js';
import { buildCli, jsonLines, runCli } from './run-cli.js';

const MODEL = JSON.stringify({ tiny: 'gpt2', device: 'cpu' });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return check();
}

describe('the warm worker', () => {
  let cli: string;
  let dispose: () => void;
  const homes: string[] = [];

  /** A fresh cache folder and the CLI bound to it. */
  function home() {
    const dir = mkdtempSync(join(tmpdir(), 'softprompt-warm-'));
    homes.push(dir);
    const env = { SOFTPROMPT_CACHE_DIR: dir };
    return {
      dir,
      run: (args: readonly string[], stdin?: string) => runCli(cli, args, { env, ...(stdin === undefined ? {} : { stdin }) }),
      status: async () => JSON.parse((await runCli(cli, ['worker', 'status', '--json'], { env })).stdout) as { running: boolean; pid: number; workerPid: number; endpoint: string },
    };
  }

  beforeAll(async () => {
    ({ entry: cli, dispose } = await buildCli());
  });
  afterAll(async () => {
    for (const dir of homes) await runCli(cli, ['worker', 'stop'], { env: { SOFTPROMPT_CACHE_DIR: dir } });
    dispose?.();
    for (const dir of homes) rmSync(dir, { recursive: true, force: true });
  });

  it('the first command starts it, the next reuses it; status shows it, stop stops it', async () => {
    const h = home();
    const first = await h.run(['embed', '--model', MODEL, '--text', 'a cat']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('starting the warm worker');
    const state = await h.status();
    expect(state).toMatchObject({ running: true, endpoint: expect.stringMatching(/^ipc:\/\//) });
    // Only this user can reach it: the socket's folder (made by the SDK's start path) and the state are private.
    expect(statSync(dirname(state.endpoint.slice('ipc://'.length))).mode & 0o777).toBe(0o700);
    expect(statSync(join(h.dir, 'worker')).mode & 0o777).toBe(0o700);
    expect(statSync(join(h.dir, 'worker', 'state.json')).mode & 0o777).toBe(0o600);

    const started = performance.now();
    const second = await h.run(['embed', '--model', MODEL, '--text', 'a dog']);
    const warmMs = performance.now() - started;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toContain('starting');
    expect(jsonLines(second.stdout)[0]!['embedding']).toHaveLength(64);
    expect(warmMs).toBeLessThan(5_000); // no worker start (bench/warm-cli measures it)
    expect((await h.status()).workerPid).toBe(state.workerPid);

    const stop = await h.run(['worker', 'stop']);
    expect(stop.stdout).toContain(`stopped the warm worker (pid ${state.pid})`);
    expect(await h.status()).toEqual({ running: false });
    expect(await until(() => !alive(state.workerPid), 10_000)).toBe(true);
  });

  it('concurrent first commands share one daemon', async () => {
    const h = home();
    const runs = await Promise.all(['a', 'b', 'c'].map((t) => h.run(['embed', '--model', MODEL, '--text', t])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const log = readFileSync(join(h.dir, 'worker', 'worker.log'), 'utf8');
    expect(log.match(/starting the worker with/g)).toHaveLength(1);
    await h.run(['worker', 'stop']);
  });

  it('stops after its idle timeout; a killed daemon is replaced by the next command', async () => {
    const h = home();
    const start = await h.run(['worker', 'start', '--idle', '1s', '--json']);
    expect(start.code, start.stderr).toBe(0);
    const { pid } = JSON.parse(start.stdout) as { pid: number };
    expect(await until(async () => !(await h.status()).running && !alive(pid), 20_000)).toBe(true);

    await h.run(['worker', 'start']);
    const before = await h.status();
    process.kill(before.pid, 'SIGKILL');
    await until(() => !alive(before.workerPid), 15_000); // the worker dies with its daemon
    const next = await h.run(['embed', '--model', MODEL, '--text', 'again']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain('starting the warm worker');
    expect((await h.status()).pid).not.toBe(before.pid);
    await h.run(['worker', 'stop']);
  });

  it('--no-warm runs a worker of its own and leaves no warm one', async () => {
    const h = home();
    const r = await h.run(['embed', '--no-warm', '--model', MODEL, '--text', 'x']);
    expect(r.code, r.stderr).toBe(0);
    expect(await h.status()).toEqual({ running: false });
  });

  describe('--connect', () => {
    let keys: Keys;
    let served: Served;
    beforeAll(async () => {
      keys = await makeKeys();
      served = await serve(keys);
    });
    afterAll(async () => {
      if (served) await kill(served);
      if (keys) rmSync(keys.root, { recursive: true, force: true });
    });

    it('uses a served worker with CURVE keys; an unlisted key is refused (exit 3)', async () => {
      const h = home();
      const ok = await h.run(['embed', '--connect', served.endpoint, '--keys', keys.dir('alice'), '--key-name', 'alice', '--model', MODEL, '--text', 'hi']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(jsonLines(ok.stdout)).toHaveLength(1);
      expect(await h.status()).toEqual({ running: false });
      const refused = await h.run(['embed', '--connect', served.endpoint, '--keys', keys.dir('mallory'), '--key-name', 'mallory', '--model', MODEL, '--text', 'hi']);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain('refused');
    });
  });
});
