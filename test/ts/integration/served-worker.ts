/**
 * A `softprompt-worker serve` process on loopback TCP with CURVE, for the remote and load tests, plus
 * key pairs made by `softprompt-worker keys new` (alice and bob listed, mallory not).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { workerPythonPath } from '../../../ts/src/internal/python.js';
import { fixtures, venvPython } from '../helpers.js';

const pythonEnv = {
  ...process.env,
  PYTHONPATH: [workerPythonPath(), fixtures].join(':'),
  SOFTPROMPT_EXTRA_OP_MODULES: 'ts_test_ops',
  OMP_NUM_THREADS: '1',
};

/** Key folders as `Softprompt.connect({ keys: { dir, name } })` reads them: each holds `server.key`. */
export interface Keys {
  readonly root: string;
  /** The server's `server.key_secret` and its `--allow` folder (alice.key, bob.key). */
  readonly serverSecret: string;
  readonly allow: string;
  /** A client folder per name: `server.key` plus `NAME.key_secret`. */
  dir(name: 'alice' | 'bob' | 'mallory'): string;
}

/** Makes server, alice, bob (listed) and mallory (not listed) key pairs with the worker's CLI. */
export async function makeKeys(): Promise<Keys> {
  const root = mkdtempSync(join(tmpdir(), 'softprompt-keys-'));
  const run = promisify(execFile);
  const names = ['server', 'alice', 'bob', 'mallory'] as const;
  await Promise.all(
    names.map((name) => run(venvPython, ['-m', 'softprompt_worker', 'keys', 'new', '--out', join(root, name), '--name', name], { env: pythonEnv })),
  );
  const allow = join(root, 'allow');
  mkdirSync(allow);
  for (const name of ['alice', 'bob']) copyFileSync(join(root, name, `${name}.key`), join(allow, `${name}.key`));
  for (const name of ['alice', 'bob', 'mallory']) copyFileSync(join(root, 'server', 'server.key'), join(root, name, 'server.key'));
  return { root, serverSecret: join(root, 'server', 'server.key_secret'), allow, dir: (name) => join(root, name) };
}

/** A running `softprompt-worker serve`. */
export interface Served {
  readonly endpoint: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

/** Starts `softprompt-worker serve --bind BIND` (default: a free loopback port) and waits for READY. */
export async function serve(keys: Keys, bind = 'tcp://127.0.0.1:*', extra: readonly string[] = [], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(
    venvPython,
    ['-m', 'softprompt_worker', 'serve', '--bind', bind, '--server-key', keys.serverSecret, '--allow', keys.allow, '--log-level', 'error', ...extra],
    { env: { ...pythonEnv, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ endpoint: string; pid: number }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => {
      if (line.startsWith('SOFTPROMPT_READY ')) resolve(JSON.parse(line.slice('SOFTPROMPT_READY '.length)));
      else reject(new Error(`unexpected first line from softprompt-worker serve: ${line}`));
    });
    void exited.then(() => reject(new Error('softprompt-worker serve exited before READY')));
  });
  return { ...ready, child, exited };
}

/** SIGKILLs the server and waits for it to be gone. */
export async function kill(served: Served): Promise<void> {
  served.child.kill('SIGKILL');
  await served.exited;
}

/** The resident set size of a process, in bytes (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}
