/**
 * Launching one worker process and waiting until it has bound its socket.
 *
 * The worker is `python -m softprompt_worker --endpoint E --parent-pid P` (WIRE.md, "Sockets and
 * start-up"). It prints `SOFTPROMPT_READY {json}` on stdout once bound; its stderr lines go to the
 * logger and the last ones are kept for error messages. execa kills it when this process exits, and
 * the worker watches the parent pid itself.
 *
 * With `distributed`, the process is torchrun's agent (`python -m torch.distributed.run ... -m
 * softprompt_worker --distributed BACKEND`), which starts the ranks; rank 0 prints READY. Each rank
 * watches this process's pid (not the agent's), and the kernel kills the ranks when the agent dies.
 */
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { type ResultPromise, execa } from 'execa';
import { WorkerStartError } from '../core/errors.js';
import { type LogFunction, levelOfLine } from '../core/logger.js';
import { PYTHON_FIX, type ResolvedPython, workerPythonPath } from './python.js';
import type { ResolvedDistributedOptions } from './options.js';
import { type WorkerCurve, chooseEndpoint } from './socket-dir.js';

const READY_PREFIX = 'SOFTPROMPT_READY ';
const STDERR_TAIL_LINES = 40;

export interface SpawnOptions {
  readonly python: ResolvedPython;
  /** The folder holding `softprompt_worker/` (`StartOptions.workerPath`). Default: this package's `python/`. */
  readonly workerPath?: string;
  /** Test hook: replaces `[python, '-m', 'softprompt_worker']`; endpoint arguments are appended. */
  readonly workerCommand?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly transport: 'ipc' | 'tcp';
  /** Start a torchrun worker group instead of one process. */
  readonly distributed?: ResolvedDistributedOptions;
  readonly startTimeoutMs: number;
  readonly log: LogFunction;
}

export interface ExitInfo {
  readonly exitCode: number | null;
  readonly signal: string | null;
}

/** What the worker said in its READY line. */
export interface ReadyInfo {
  readonly endpoint: string;
  readonly protocol: number;
  readonly pid: number;
  /** The CURVE keys to connect with (transport 'tcp'). */
  readonly curve?: WorkerCurve;
}

/** A started worker process. */
export class WorkerProcess {
  readonly #child: ResultPromise;
  readonly #tail: string[] = [];
  readonly #socketDir: string | undefined;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  #exit: ExitInfo | undefined;
  #spawnError: (Error & { code?: string }) | undefined;

  private constructor(child: ResultPromise, socketDir: string | undefined, log: LogFunction) {
    this.#child = child;
    this.#socketDir = socketDir;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.#tail.push(line);
      if (this.#tail.length > STDERR_TAIL_LINES) this.#tail.shift();
      log(levelOfLine(line), `worker: ${line}`);
    });
    this.exited = child.then((result) => {
      const r = result as typeof result & { code?: string };
      if (r.failed && r.exitCode === undefined && !r.signal) this.#spawnError = Object.assign(new Error(r.message), { code: r.code });
      this.#exit = { exitCode: r.exitCode ?? null, signal: r.signal ?? null };
      if (this.#socketDir) void rm(this.#socketDir, { recursive: true, force: true });
      return this.#exit;
    });
  }

  /** Spawns the worker and waits for its READY line. Throws {@link WorkerStartError} with a fix. */
  static async start(options: SpawnOptions): Promise<{ process: WorkerProcess; ready: ReadyInfo }> {
    const { endpoint, socketDir, curve } = await chooseEndpoint(options.transport);
    const [command, ...baseArgs] = options.workerCommand ?? workerArgv(options.python.command, options.distributed);
    const pythonPath = [options.workerPath ?? workerPythonPath(), options.env?.['PYTHONPATH'] ?? process.env['PYTHONPATH']].filter(Boolean).join(':');
    const curveArgs = curve ? ['--curve-stdin'] : [];
    const child = execa(command!, [...baseArgs, '--endpoint', endpoint, '--parent-pid', String(process.pid), ...curveArgs], {
      env: { PYTHONUNBUFFERED: '1', ...options.env, PYTHONPATH: pythonPath },
      // the CURVE keys travel over a pipe only this process holds: never in argv or the environment
      ...(curve ? { input: curve.stdinLine } : { stdin: 'ignore' as const }),
      buffer: false,
      reject: false,
      cleanup: true,
    });
    const worker = new WorkerProcess(child, socketDir, options.log);
    try {
      const ready = await worker.#waitReady(options);
      return { process: worker, ready: curve ? { ...ready, curve } : ready };
    } catch (error) {
      worker.kill('SIGKILL');
      await worker.exited;
      throw error;
    }
  }

  /** The OS process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** How it exited, once it has. */
  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** The last lines of stderr, joined. */
  get stderrTail(): string {
    return this.#tail.join('\n');
  }

  /** Sends a signal (no-op once exited). */
  kill(signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.#child.kill(signal);
  }

  /** Waits up to `ms` for the exit, then SIGTERM, then SIGKILL after another `ms`. */
  async stop(ms: number): Promise<ExitInfo> {
    for (const signal of [undefined, 'SIGTERM', 'SIGKILL'] as const) {
      if (signal) this.kill(signal);
      const exit = await Promise.race([this.exited, delay(ms)]);
      if (exit) return exit;
    }
    return this.exited;
  }

  #waitReady(options: SpawnOptions): Promise<ReadyInfo> {
    return new Promise<ReadyInfo>((resolve, reject) => {
      const lines = createInterface({ input: this.#child.stdout! });
      let ready = false;
      const timer = setTimeout(() => {
        reject(
          new WorkerStartError(
            `The softprompt worker did not become ready within ${options.startTimeoutMs} ms (options.startTimeoutMs). ` +
              `It may be stuck importing packages or binding its socket.${tailText(this.stderrTail)}`,
            { stderrTail: this.stderrTail },
          ),
        );
      }, options.startTimeoutMs);
      lines.on('line', (line) => {
        if (ready || !line.startsWith(READY_PREFIX)) {
          if (line.trim()) options.log('info', `worker stdout: ${line}`);
          return;
        }
        ready = true;
        clearTimeout(timer);
        try {
          resolve(parseReady(line.slice(READY_PREFIX.length)));
        } catch (cause) {
          reject(new WorkerStartError(`The worker's READY line is malformed: ${line}`, { cause }));
        }
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        if (!ready) reject(this.#startFailure(options));
      });
    });
  }

  #startFailure(options: SpawnOptions): WorkerStartError {
    const tail = this.stderrTail;
    const { command, source } = options.python;
    if (this.#spawnError) {
      const what = options.workerCommand ? `worker command ${JSON.stringify(options.workerCommand[0])}` : `Python interpreter ${JSON.stringify(command)} (from ${source})`;
      const reason = this.#spawnError.code === 'ENOENT' ? 'was not found' : this.#spawnError.code === 'EACCES' ? 'is not executable' : `could not be run (${this.#spawnError.message})`;
      return new WorkerStartError(`The ${what} ${reason}. ${PYTHON_FIX}`, { cause: this.#spawnError });
    }
    const missing = /ModuleNotFoundError: No module named '([\w.]+)'/.exec(tail)?.[1];
    if (missing !== undefined) {
      return new WorkerStartError(
        `The Python at ${JSON.stringify(command)} (from ${source}) lacks the package '${missing.split('.')[0]}'. ${PYTHON_FIX}${tailText(tail)}`,
        { stderrTail: tail },
      );
    }
    const { exitCode, signal } = this.#exit ?? { exitCode: null, signal: null };
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    return new WorkerStartError(`The softprompt worker ${how} before it was ready.${tailText(tail)}`, { stderrTail: tail });
  }
}

/** `[python, '-m', 'softprompt_worker']`, or the torchrun command that starts a worker group. */
export function workerArgv(python: string, distributed?: ResolvedDistributedOptions): string[] {
  if (!distributed) return [python, '-m', 'softprompt_worker'];
  const launcher = [python, '-m', 'torch.distributed.run', ...torchrunArgs(distributed)];
  return [...launcher, '-m', 'softprompt_worker', '--distributed', distributed.backend];
}

/**
 * torchrun's arguments: one node on a free local port (`--standalone`), or static rendezvous at
 * `rdzvEndpoint` as node `nodeRank` (0), so global rank 0 runs on this machine (docs/distributed.md).
 */
export function torchrunArgs(d: ResolvedDistributedOptions): string[] {
  const procs = ['--nproc-per-node', String(d.nprocPerNode)];
  if (d.rdzvEndpoint === undefined) return ['--standalone', ...procs];
  return [
    '--nnodes', String(d.nnodes), ...procs, '--node-rank', String(d.nodeRank),
    '--rdzv-backend', 'static', '--rdzv-endpoint', d.rdzvEndpoint,
    ...(d.rdzvId === undefined ? [] : ['--rdzv-id', d.rdzvId]),
  ];
}

function parseReady(json: string): ReadyInfo {
  const info = JSON.parse(json) as Partial<ReadyInfo>;
  if (typeof info.endpoint !== 'string' || typeof info.protocol !== 'number' || typeof info.pid !== 'number') {
    throw new Error('expected {endpoint: string, protocol: number, pid: number}');
  }
  return { endpoint: info.endpoint, protocol: info.protocol, pid: info.pid };
}

function tailText(tail: string): string {
  return tail ? `\n--- worker stderr (last lines) ---\n${tail}` : '';
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms).unref());
}
