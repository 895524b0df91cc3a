// A served worker for the benchmarks (`softprompt-worker serve` on loopback TCP with CURVE): a fresh key
// pair for the server and for one client, and the worker started with extra flags.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Key pairs in a temp folder: server/, client/ (with the server's public key), allow/ (the client's). */
export function makeKeys(python, env, prefix) {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  for (const name of ['server', 'client']) {
    execFileSync(python, ['-m', 'softprompt_worker', 'keys', 'new', '--out', join(dir, name), '--name', name], { env });
  }
  mkdirSync(join(dir, 'allow'));
  copyFileSync(join(dir, 'client', 'client.key'), join(dir, 'allow', 'client.key'));
  copyFileSync(join(dir, 'server', 'server.key'), join(dir, 'client', 'server.key'));
  return dir;
}

/** Starts `softprompt-worker serve ... extraArgs`; resolves with `{ child, endpoint, pid, ... }` once it is ready. */
export async function serve(python, env, keys, extraArgs = []) {
  const args = ['-m', 'softprompt_worker', 'serve', '--bind', 'tcp://127.0.0.1:*', '--server-key', join(keys, 'server', 'server.key_secret'), '--allow', join(keys, 'allow'), '--log-level', 'error', ...extraArgs];
  const child = spawn(python, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (l) => resolve(JSON.parse(l.replace(/^SOFTPROMPT_READY /, ''))));
    child.once('exit', (code) => reject(new Error(`softprompt-worker serve exited ${code}`)));
  });
  return { child, ...ready };
}
