/**
 * Owns the worker: starts it and shakes hands, notices when it dies, fails the calls that were open
 * with {@link WorkerCrashedError}, restarts it with exponential backoff up to a limit, and shuts it
 * down on close (shutdown request → SIGTERM → SIGKILL). A restarted worker first runs the
 * {@link Supervisor.onRestart} hooks (which replay state the dead worker held), then takes calls.
 */
import { ClientClosedError, RemoteError, SoftpromptError, WorkerCrashedError, WorkerStartError } from '../core/errors.js';
import type { LogFunction } from '../core/logger.js';
import type { LifecycleEvent } from '../core/start-options.js';
import type { ResolvedStartOptions } from './options.js';
import { packageVersion } from './package.js';
import { PYTHON_FIX, resolvePython } from './python.js';
import { type HelloInfo, helloBody, parseHello, unary } from './handshake.js';
import type { RestartHook, WorkerLink } from './link.js';
import { Transport } from './transport.js';
import { PROTOCOL_VERSION } from './wire.js';
import { WorkerProcess } from './worker-process.js';

/** Hooks for tests; never part of the public options. */
export interface InternalHooks {
  /** Replaces `[python, '-m', 'softprompt_worker']`, e.g. a fake worker script. */
  readonly workerCommand?: readonly string[];
}

export type { HelloInfo, RestartHook };

/** A live, handshaken worker. */
export interface Connection {
  readonly transport: Transport;
  readonly process: WorkerProcess;
  readonly hello: HelloInfo;
  readonly startedAt: number;
  /** The endpoint the worker bound (its READY line): an ipc path in a private folder, or loopback TCP. */
  readonly endpoint: string;
}

/** A worker that stayed up this long is "stable": the restart count starts again from zero. */
const STABLE_MS = 30_000;

export class Supervisor implements WorkerLink {
  readonly #options: ResolvedStartOptions;
  readonly #hooks: InternalHooks;
  readonly #log: LogFunction;
  #current: Connection | undefined;
  #restarting: Promise<Connection> | undefined;
  #failure: Error | undefined;
  #restarts = 0;
  #closed = false;
  #lastHello: HelloInfo;
  readonly #restartHooks: RestartHook[] = [];
  #markClosed: () => void = () => {};
  readonly #closedNow = new Promise<void>((resolve) => (this.#markClosed = resolve));

  private constructor(options: ResolvedStartOptions, hooks: InternalHooks, log: LogFunction, first: Connection) {
    this.#options = options;
    this.#hooks = hooks;
    this.#log = log;
    this.#lastHello = first.hello;
    this.#adopt(first);
  }

  /** Starts the first worker; throws {@link WorkerStartError} saying how to fix a failure. */
  static async start(options: ResolvedStartOptions, hooks: InternalHooks, log: LogFunction): Promise<Supervisor> {
    const first = await launch(options, hooks, log);
    return new Supervisor(options, hooks, log, first);
  }

  /** The live connection, if there is one right now (the fast path for calls). */
  get current(): Connection | undefined {
    return this.#current;
  }

  /** The latest handshake (kept across restarts). */
  get hello(): HelloInfo {
    return this.#lastHello;
  }

  /** The client's log function (the `logger` start option). */
  get log(): LogFunction {
    return this.#log;
  }

  /**
   * Registers `hook` to run on every restarted worker before it takes calls: {@link connection} (and so
   * every queued or new call) resolves only once the hooks have settled, in registration order. A hook
   * sends on the `conn` it is given (the new worker, not yet current). A hook that throws is logged and
   * never fails the restart; if the new worker dies meanwhile, the restart goes on as for any crash.
   */
  onRestart(hook: RestartHook): void {
    this.#restartHooks.push(hook);
  }

  /** The live connection, waiting for a restart in progress; rejects when closed or given up. */
  connection(): Promise<Connection> {
    if (this.#closed) return Promise.reject(new ClientClosedError());
    if (this.#current) return Promise.resolve(this.#current);
    if (this.#restarting) return this.#restarting;
    return Promise.reject(this.#failure ?? new SoftpromptError('invalid_state', 'no worker is running'));
  }

  /** Stops the worker and fails open calls with {@link ClientClosedError}. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#markClosed(); // a restart waiting on its hooks stops waiting
    const conn = this.#current ?? (await this.#restarting?.catch(() => undefined));
    this.#current = undefined;
    if (conn === undefined) return;
    const ms = this.#options.shutdownTimeoutMs;
    conn.transport.failAll(new ClientClosedError());
    const exited = conn.process.exited.then(() => true);
    await Promise.race([exited, unary(conn.transport, 'shutdown', {}, ms).catch(() => undefined)]);
    conn.transport.close(new ClientClosedError());
    await conn.process.stop(ms);
  }

  #adopt(conn: Connection): void {
    this.#current = conn;
    this.#lastHello = conn.hello;
    void conn.process.exited.then((exit) => {
      if (this.#current !== conn || this.#closed) return;
      this.#current = undefined;
      const crash = new WorkerCrashedError(exit.exitCode, exit.signal, conn.process.stderrTail);
      conn.transport.close(crash);
      this.#log('error', crash.message);
      this.#emit({ type: 'crash', exitCode: exit.exitCode, signal: exit.signal, stderrTail: crash.stderrTail });
      if (Date.now() - conn.startedAt >= STABLE_MS) this.#restarts = 0;
      this.#restarting = this.#restart(crash);
      this.#restarting.catch(() => {}); // callers see it through connection()
    });
  }

  async #restart(crash: WorkerCrashedError): Promise<Connection> {
    const { maxRestarts, backoffMs } = this.#options.restart;
    let last: Error = crash;
    try {
      while (this.#restarts < maxRestarts) {
        const attempt = ++this.#restarts;
        await sleep(backoffMs * 2 ** (attempt - 1));
        if (this.#closed) throw new ClientClosedError();
        try {
          const conn = await launch(this.#options, this.#hooks, this.#log);
          await this.#runRestartHooks(conn);
          if (this.#closed) {
            conn.transport.close(new ClientClosedError());
            await conn.process.stop(this.#options.shutdownTimeoutMs);
            throw new ClientClosedError();
          }
          this.#adopt(conn);
          this.#emit({ type: 'restart', attempt, pid: conn.hello.pid });
          return conn;
        } catch (error) {
          if (error instanceof ClientClosedError) throw error;
          last = error as Error;
          this.#emit({ type: 'restart_failed', attempt, error: last });
        }
      }
      throw new WorkerStartError(
        `The softprompt worker crashed and ${maxRestarts} restarts (options.restart.maxRestarts) did not bring it back. ` +
          `Last failure: ${last.message}`,
        { cause: last },
      );
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    } finally {
      this.#restarting = undefined;
    }
  }

  async #runRestartHooks(conn: Connection): Promise<void> {
    const died = conn.process.exited.then(() => {}); // its crash is handled once adopted
    for (const hook of this.#restartHooks) {
      if (this.#closed) return;
      const run = Promise.resolve().then(() => hook(conn)).catch((error: Error) => {
        if (!this.#closed) this.#log('error', `restoring the restarted worker's state failed: ${error.message}`);
      });
      await Promise.race([run, died, this.#closedNow]);
    }
  }

  #emit(event: LifecycleEvent): void {
    try {
      this.#options.onLifecycle?.(event);
    } catch (error) {
      this.#log('error', `onLifecycle callback threw: ${(error as Error).message}`);
    }
  }
}

/** Spawns a worker, connects, and says `hello`. Any failure kills the process and throws WorkerStartError. */
async function launch(options: ResolvedStartOptions, hooks: InternalHooks, log: LogFunction): Promise<Connection> {
  const python = resolvePython(options.python);
  const spawnedAt = Date.now();
  const deadline = spawnedAt + options.startTimeoutMs;
  const { process, ready } = await WorkerProcess.start({
    python,
    transport: options.transport,
    startTimeoutMs: options.startTimeoutMs,
    log,
    ...(options.env ? { env: options.env } : {}),
    ...(options.workerPath ? { workerPath: options.workerPath } : {}),
    ...(options.distributed ? { distributed: options.distributed } : {}),
    ...(hooks.workerCommand ? { workerCommand: hooks.workerCommand } : {}),
  });
  const curve = ready.curve;
  const transport = Transport.connect(
    ready.endpoint,
    log,
    curve ? { curveServerKey: curve.serverPublicKey, curvePublicKey: curve.clientPublicKey, curveSecretKey: curve.clientSecretKey } : {},
  );
  try {
    if (ready.protocol !== PROTOCOL_VERSION) throw mismatch(ready.protocol);
    const reply = await unary(transport, 'hello', helloBody(), Math.max(1, deadline - Date.now()));
    const hello = { ...parseHello(reply), startupMs: Date.now() - spawnedAt };
    if (hello.protocol !== PROTOCOL_VERSION) throw mismatch(hello.protocol);
    const missing = hello.capabilities.missing ?? (hello.capabilities.torch ? [] : ['torch']);
    if (missing.length > 0) {
      throw new WorkerStartError(
        `The worker's Python (${python.command}, from ${python.source}) lacks ${missing.join(', ')}. ` +
          `${hello.capabilities.installHint ? `${hello.capabilities.installHint}. ` : ''}${PYTHON_FIX}`,
      );
    }
    return { transport, process, hello, startedAt: Date.now(), endpoint: ready.endpoint };
  } catch (error) {
    transport.close(new ClientClosedError());
    process.kill('SIGKILL');
    await process.exited;
    if (error instanceof WorkerStartError) throw error;
    if (error instanceof RemoteError && error.code === 'protocol_version_mismatch') {
      const worker = error.details['worker'];
      throw mismatch(typeof worker === 'number' ? worker : undefined, error);
    }
    throw new WorkerStartError(`The handshake with the worker failed: ${(error as Error).message}`, {
      cause: error,
      stderrTail: process.stderrTail,
    });
  }
}

function mismatch(workerProtocol: number | undefined, cause?: Error): WorkerStartError {
  return new WorkerStartError(
    `The worker speaks protocol ${workerProtocol ?? 'another version'}, this SDK (softprompt-ts/${packageVersion()}) speaks ${PROTOCOL_VERSION}. ` +
      'The SDK and the worker come from different softprompt versions: reinstall both from one release ' +
      '(`make setup`, or `pip install -e .` in the softprompt folder), and check that SOFTPROMPT_PYTHON / options.python ' +
      'does not point at an environment with another softprompt-worker.',
    cause ? { cause } : undefined,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
