/**
 * A CLI command's client on the warm worker: take a lease (so the daemon's idle clock stops), find the
 * daemon or start one, and connect to its worker. A daemon from another softprompt version is replaced;
 * one running another Python than this command asks for is left alone (the command then runs its own
 * worker, and says so).
 */
import { Softprompt } from '../../client.js';
import type { LogFunction } from '../../core/logger.js';
import { packageVersion } from '../../internal/package.js';
import { resolvePython } from '../../internal/python.js';
import type { Output } from '../output.js';
import { ensureDaemon } from './start.js';
import { type WarmState, alive, ensureWarmDir, formatIdle, liveState, takeLease, warmDir } from './state.js';

/** Idle timeout of a daemon a command starts: `$SOFTPROMPT_WORKER_IDLE`, else 15 minutes. */
export const DEFAULT_IDLE_MS = 15 * 60_000;

export interface WarmClient {
  readonly sp: Softprompt;
  /** Gives the lease back (after `sp.close()`). */
  readonly release: () => void;
}

export interface WarmOptions {
  readonly python: string | undefined;
  readonly idleMs: number;
  readonly log: LogFunction;
}

/** A client on the warm worker, or undefined when this command should run its own (another Python). */
export async function warmClient(options: WarmOptions, out: Output): Promise<WarmClient | undefined> {
  const dir = warmDir();
  ensureWarmDir(dir);
  const release = takeLease(dir);
  try {
    const python = resolvePython(options.python).command;
    let state = liveState(dir);
    if (state && state.sdkVersion !== packageVersion()) {
      out.note(`softprompt: replacing the warm worker of softprompt ${state.sdkVersion} with one of ${packageVersion()}`);
      await stopDaemon(state);
      state = undefined;
    }
    if (state && state.python !== python) {
      out.note(`softprompt: the warm worker runs ${state.python}, not ${python}: starting a worker for this command (\`softprompt worker stop\` to replace it)`);
      release();
      return undefined;
    }
    if (!state) {
      out.note(`softprompt: starting the warm worker (later commands reuse it; it stops after ${formatIdle(options.idleMs)} idle, or with \`softprompt worker stop\`)…`);
      state = await ensureDaemon({ dir, python: options.python, idleMs: options.idleMs, timeoutMs: 180_000 });
    }
    const sp = await Softprompt.connect(state.endpoint, { connectTimeoutMs: 10_000, logger: options.log });
    return { sp, release };
  } catch (error) {
    release();
    throw error;
  }
}

/** SIGTERM to the daemon, then waits up to `ms` for it to exit (SIGKILL after that). Resolves true when it had been running. */
export async function stopDaemon(state: WarmState, ms = 15_000): Promise<boolean> {
  if (!alive(state.pid)) return false;
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + ms;
  while (alive(state.pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  if (alive(state.pid)) process.kill(state.pid, 'SIGKILL');
  return true;
}
