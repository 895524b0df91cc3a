/**
 * Starting the warm worker's daemon in the background: `node <this CLI> worker run` as a detached
 * process (its own session, so a terminal's Ctrl-C does not reach it), its stderr appended to
 * `worker.log`, its first stdout line telling the starter it is ready (or why it failed). `start.lock`
 * makes concurrent starters wait for one daemon instead of starting several.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WorkerStartError } from '../../core/errors.js';
import { FAILED_PREFIX, READY_PREFIX } from './daemon.js';
import { type WarmState, ensureWarmDir, liveState, tryStartLock } from './state.js';

export interface StartOptions {
  readonly dir: string;
  readonly python: string | undefined;
  readonly idleMs: number;
  /** How long to wait for the worker to be ready, in ms. */
  readonly timeoutMs: number;
}

/** The running daemon's state, starting one when none runs. Throws WorkerStartError with the daemon's reason. */
export async function ensureDaemon(options: StartOptions): Promise<WarmState> {
  const { dir } = options;
  ensureWarmDir(dir);
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const running = liveState(dir);
    if (running) return running;
    const release = tryStartLock(dir);
    if (release) {
      try {
        return liveState(dir) ?? (await spawnDaemon(options, deadline));
      } finally {
        release();
      }
    }
    if (Date.now() > deadline) throw new WorkerStartError(`another process has been starting the warm worker for ${options.timeoutMs} ms; see ${join(dir, 'worker.log')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function spawnDaemon(options: StartOptions, deadline: number): Promise<WarmState> {
  const log = join(options.dir, 'worker.log');
  const logFd = openSync(log, 'a', 0o600);
  const args = [...process.execArgv, process.argv[1]!, 'worker', 'run', '--idle', `${options.idleMs}ms`, ...(options.python ? ['--python', options.python] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', logFd], env: process.env, cwd: options.dir });
  closeSync(logFd);
  return new Promise<WarmState>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let settled = false;
    const done = (error: Error | undefined, state?: WarmState) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      lines.close();
      child.stdout!.destroy();
      child.unref();
      if (error) reject(error);
      else resolve(state!);
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      done(new WorkerStartError(`the warm worker did not become ready in time; see ${log}`));
    }, Math.max(1, deadline - Date.now()));
    lines.on('line', (line) => {
      if (line.startsWith(READY_PREFIX)) done(undefined, JSON.parse(line.slice(READY_PREFIX.length)) as WarmState);
      else if (line.startsWith(FAILED_PREFIX)) {
        const { message } = JSON.parse(line.slice(FAILED_PREFIX.length)) as { message: string };
        done(new WorkerStartError(message));
      }
    });
    child.on('exit', (code, signal) => done(new WorkerStartError(`the warm worker's daemon exited (${signal ?? `code ${code}`}) before it was ready; see ${log}`)));
  });
}
