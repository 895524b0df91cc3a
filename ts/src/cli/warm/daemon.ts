/**
 * The warm worker's daemon (`softprompt worker run`): a small Node process that starts a worker through
 * the SDK's own local start path (`startSoftprompt`, as `Softprompt.start()` does: an ipc socket in a
 * fresh 0700 folder, the worker bound to this process's life), records its endpoint in `state.json`, and
 * keeps it until it has been idle (no CLI process holding a lease) for the idle timeout, until SIGTERM
 * (`softprompt worker stop`), or until the worker dies. CLI commands then connect to the endpoint
 * (`Softprompt.connect`), so they skip the worker's start-up and keep its loaded models.
 */
import { type Softprompt, localWorkerEndpoint, startSoftprompt } from '../../client.js';
import { WorkerStartError } from '../../core/errors.js';
import { packageVersion } from '../../internal/package.js';
import { resolvePython } from '../../internal/python.js';
import { type WarmState, clearState, ensureWarmDir, liveLeases, liveState, readState, writeState } from './state.js';

/** The line `worker run` prints on stdout once the worker is ready (its starter waits for it). */
export const READY_PREFIX = 'SOFTPROMPT_WARM_READY ';
/** ...or, when it could not start, this one with `{"code", "message"}`. */
export const FAILED_PREFIX = 'SOFTPROMPT_WARM_FAILED ';

export interface DaemonOptions {
  readonly dir: string;
  readonly python: string | undefined;
  /** Stop after this long with no lease, in ms; 0 = never. */
  readonly idleMs: number;
  /** Where `worker.log` is (recorded in the state). */
  readonly log: string;
  /** A log line (to stderr, which the starter points at `worker.log`). */
  readonly write: (line: string) => void;
  /** Called once the worker is ready, with the state written. */
  readonly ready: (state: WarmState) => void;
}

/** Runs the daemon until it stops; resolves with the reason. Throws WorkerStartError when the worker cannot start. */
export async function runDaemon(options: DaemonOptions): Promise<string> {
  const { dir, write } = options;
  ensureWarmDir(dir);
  const other = liveState(dir);
  if (other !== undefined && other.pid !== process.pid) {
    throw new WorkerStartError(`a warm worker already runs (daemon pid ${other.pid}, ${other.endpoint}); stop it first with \`softprompt worker stop\``);
  }
  let stop: (why: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const python = resolvePython(options.python);
  write(`starting the worker with ${python.command} (from ${python.source})`);
  const sp: Softprompt = await startSoftprompt(
    {
      ...(options.python ? { python: options.python } : {}),
      transport: 'ipc',
      restart: { maxRestarts: 0 }, // a new worker would have a new endpoint: the next command starts a new daemon instead
      logger: (level, message) => write(`[${level}] ${message}`),
      onLifecycle: (event) => {
        if (event.type === 'crash') stop(`the worker died (exit code ${event.exitCode}, signal ${event.signal})`);
      },
    },
    {},
  );
  try {
    const endpoint = localWorkerEndpoint(sp);
    if (endpoint === undefined || !endpoint.startsWith('ipc://')) {
      // Only an ipc socket in a private folder keeps other users out without a key to hand over.
      throw new WorkerStartError(
        `the warm worker needs an ipc socket, but the worker bound ${endpoint ?? 'nothing'} (is the temp folder's path too long for a socket? set TMPDIR to a shorter one)`,
      );
    }
    const state: WarmState = {
      pid: process.pid,
      workerPid: sp.workerPid ?? 0,
      endpoint,
      python: python.command,
      sdkVersion: packageVersion(),
      workerVersion: sp.workerVersion,
      startedAt: new Date().toISOString(),
      idleMs: options.idleMs,
      log: options.log,
    };
    writeState(dir, state);
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(`${signal}`));
    const tick = Math.min(5_000, Math.max(250, options.idleMs / 4 || 5_000));
    let lastActive = Date.now();
    const timer = setInterval(() => {
      if (readState(dir)?.pid !== process.pid) return stop('state.json no longer names this daemon');
      if (liveLeases(dir) > 0) lastActive = Date.now();
      else if (options.idleMs > 0 && Date.now() - lastActive >= options.idleMs) stop(`idle for ${Math.round((Date.now() - lastActive) / 1000)} s`);
    }, tick);
    write(`ready: worker pid ${state.workerPid} at ${endpoint}; idle timeout ${options.idleMs} ms`);
    options.ready(state);
    const why = await stopped;
    clearInterval(timer);
    write(`stopping: ${why}`);
    return why;
  } finally {
    clearState(dir, process.pid);
    await sp.close();
  }
}
