/**
 * Starting the SDK client for the CLI. Two differences from `Softprompt.start()`:
 *
 * - Log lines at `--log-level` and above go to stderr (above the progress bar).
 * - The worker runs in its own process group. A terminal's Ctrl-C signals the whole foreground
 *   group; the worker stops on SIGINT, which would race the clean cancel the CLI asks for (and lose
 *   the job's final reply). In its own group only the CLI hears Ctrl-C, and cancels the job through
 *   the SDK. The worker still dies with the CLI (parent-death watch, execa's cleanup).
 */
import { type Softprompt, startSoftprompt } from '../client.js';
import type { LogLevel } from '../core/logger.js';
import { resolvePython } from '../internal/python.js';
import type { Output } from './output.js';

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
}

export function startClient(options: WorkerOptions, out: Output): Promise<Softprompt> {
  const python = resolvePython(options.python);
  const min = RANK[options.logLevel];
  return startSoftprompt(
    {
      ...(options.python ? { python: options.python } : {}),
      logger: (level, message) => {
        if (RANK[level] >= min) out.note(`[${level}] ${message}`);
      },
    },
    { workerCommand: [python.command, '-c', OWN_GROUP] },
  );
}
