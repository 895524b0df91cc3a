/**
 * Which worker a CLI command uses, and starting or reaching it:
 *
 * - `--connect ENDPOINT` (`--keys DIR` for TCP): a served worker (`softprompt-worker serve`), through
 *   `Softprompt.connect`.
 * - otherwise the per-user warm worker (warm/), started on demand and kept until idle, for every
 *   command but `train`;
 * - `train`, `--no-warm` or `SOFTPROMPT_WARM=0`: a worker of the command's own, as `Softprompt.start()`
 *   starts one, with two differences:
 *   - log lines at `--log-level` and above go to stderr (above the progress bar);
 *   - the worker runs in its own process group. A terminal's Ctrl-C signals the whole foreground
 *     group; the worker stops on SIGINT, which would race the clean cancel the CLI asks for (and lose
 *     the job's final reply). In its own group only the CLI hears Ctrl-C, and cancels the job through
 *     the SDK. The worker still dies with the CLI (parent-death watch, execa's cleanup).
 */
import { Softprompt, startSoftprompt } from '../client.js';
import type { LogLevel } from '../core/logger.js';
import { resolvePython } from '../internal/python.js';
import { UsageError } from './exit-codes.js';
import type { Output } from './output.js';
import { parseDuration } from './warm/state.js';
import { DEFAULT_IDLE_MS, warmClient } from './warm/connect.js';

const RANK: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

/** `python -m softprompt_worker ARGS`, after leaving the terminal's process group (POSIX only). */
const OWN_GROUP =
  "import os, runpy, sys\n" +
  "if hasattr(os, 'setpgid'):\n" +
  "    os.setpgid(0, 0)\n" +
  "sys.argv[0] = 'softprompt_worker'\n" +
  "runpy.run_module('softprompt_worker', run_name='__main__', alter_sys=True)\n";

export interface WorkerOptions {
  readonly python: string | undefined;
  readonly logLevel: LogLevel;
  /** `--connect`: a served worker's endpoint. */
  readonly connect?: string | undefined;
  /** `--keys`: the CURVE key folder for a tcp:// `connect`; `keyName` the client's key pair in it. */
  readonly keys?: string | undefined;
  readonly keyName?: string | undefined;
  /** Use (or start) the warm worker; false: a worker of this command's own. */
  readonly warm: boolean;
}

/** A client for a command, and what to do after closing it. */
export interface CommandClient {
  readonly sp: Softprompt;
  readonly release: () => void;
}

export async function openClient(options: WorkerOptions, out: Output): Promise<CommandClient> {
  const min = RANK[options.logLevel];
  const logger = (level: LogLevel, message: string) => {
    if (RANK[level] >= min) out.note(`[${level}] ${message}`);
  };
  const none = () => {};
  if (options.connect !== undefined) {
    const keys = options.keys ? { keys: { dir: options.keys, ...(options.keyName ? { name: options.keyName } : {}) } } : {};
    return { sp: await Softprompt.connect(options.connect, { ...keys, logger }), release: none };
  }
  if (options.warm) {
    const warm = await warmClient({ python: options.python, idleMs: idleMs(), log: logger }, out);
    if (warm) return warm;
  }
  return { sp: await startClient(options, logger), release: none };
}

/** A worker of this command's own (see the file comment). */
function startClient(options: WorkerOptions, logger: (level: LogLevel, message: string) => void): Promise<Softprompt> {
  const python = resolvePython(options.python);
  return startSoftprompt({ ...(options.python ? { python: options.python } : {}), logger }, { workerCommand: [python.command, '-c', OWN_GROUP] });
}

/** Whether commands use the warm worker by default: yes, unless `$SOFTPROMPT_WARM` is `0`/`false`/`no`. */
export function warmByDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  return !['0', 'false', 'no', 'off'].includes((env['SOFTPROMPT_WARM'] ?? '').toLowerCase());
}

/** The idle timeout of a warm worker a command starts: `$SOFTPROMPT_WORKER_IDLE` (`30s`, `15m`, `2h`, `0` never), else 15 min. */
export function idleMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['SOFTPROMPT_WORKER_IDLE'];
  if (raw === undefined || raw === '') return DEFAULT_IDLE_MS;
  const ms = parseDuration(raw);
  if (ms === undefined) throw new UsageError(`SOFTPROMPT_WORKER_IDLE: expected a duration such as 30s, 15m or 2h, got '${raw}'`);
  return ms;
}
