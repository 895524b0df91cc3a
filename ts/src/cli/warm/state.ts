/**
 * The warm worker's files, in `<softprompt home>/worker/` (a 0700 folder):
 *
 *     state.json    the running warm worker: daemon pid, worker pid, endpoint, Python, idle timeout
 *     leases/PID    one per CLI process using it right now; the daemon's idle clock runs while none lives
 *     start.lock    held (O_EXCL) by the process starting a daemon, so two commands never start two
 *     worker.log    the daemon's and the worker's log lines
 *
 * Nothing here is secret: the endpoint is an ipc socket inside a 0700 folder that only this user can
 * enter (the SDK's own start path makes it), so knowing its path gives nobody else access.
 */
import { mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { softpromptHome } from '../../internal/home.js';

/** What a running daemon wrote to `state.json`. */
export interface WarmState {
  /** The daemon (`softprompt worker run`), which owns the worker. */
  readonly pid: number;
  readonly workerPid: number;
  /** `ipc://...` in a private folder. */
  readonly endpoint: string;
  /** The worker's interpreter (resolved command). */
  readonly python: string;
  readonly sdkVersion: string;
  readonly workerVersion: string;
  readonly startedAt: string;
  /** Idle time before the daemon stops, in ms; 0 = never. */
  readonly idleMs: number;
  readonly log: string;
}

export function warmDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(softpromptHome(env), 'worker');
}

/** Makes the folder (and `leases/`) private to this user. */
export function ensureWarmDir(dir: string): void {
  mkdirSync(join(dir, 'leases'), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function readState(dir: string): WarmState | undefined {
  try {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as Partial<WarmState>;
    if (typeof state.pid !== 'number' || typeof state.endpoint !== 'string') return undefined;
    return state as WarmState;
  } catch {
    return undefined;
  }
}

/** Writes `state.json` atomically (a temp file renamed over it), mode 0600. */
export function writeState(dir: string, state: WarmState): void {
  const tmp = join(dir, `.state.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, 'state.json'));
}

/** Removes `state.json` if it still names daemon `pid` (a newer daemon's file is left alone). */
export function clearState(dir: string, pid: number): void {
  if (readState(dir)?.pid === pid) rmSync(join(dir, 'state.json'), { force: true });
}

/** The running daemon's state, or undefined; a file left by a dead daemon is removed. */
export function liveState(dir: string): WarmState | undefined {
  const state = readState(dir);
  if (state === undefined) return undefined;
  if (alive(state.pid)) return state;
  clearState(dir, state.pid);
  return undefined;
}

/**
 * Whether a process with this pid runs (one we may not signal counts). A zombie does not: a killed
 * daemon whose parent has not reaped it yet must not pass for a running one.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): signal 0 is all we know
  }
}

/** Marks this process as using the warm worker until the returned release is called (or it dies). */
export function takeLease(dir: string): () => void {
  const file = join(dir, 'leases', String(process.pid));
  writeFileSync(file, '', { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/** How many live processes hold a lease; leases of dead processes are removed. */
export function liveLeases(dir: string): number {
  let n = 0;
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'leases'));
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) n += 1;
    else rmSync(join(dir, 'leases', name), { force: true });
  }
  return n;
}

/**
 * Takes `start.lock` (O_EXCL), returning its release, or undefined while another live process holds
 * it. A lock left by a dead process is broken.
 */
export function tryStartLock(dir: string): (() => void) | undefined {
  const file = join(dir, 'start.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = NaN;
      try {
        holder = Number(readFileSync(file, 'utf8').trim());
      } catch {
        continue; // removed meanwhile: try again
      }
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) return undefined;
      rmSync(file, { force: true }); // its holder died
    }
  }
  return undefined;
}

/** `30s`, `15m`, `2h`, `500ms` or a bare number of seconds → ms; `0` = never. Undefined when malformed. */
export function parseDuration(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(raw);
  if (!m) return undefined;
  const scale = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * scale);
}

/** ms → `15 min`, `45 s`, `2 h`. */
export function formatIdle(ms: number): string {
  if (ms === 0) return 'never';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}
