/** `softprompt worker start|stop|status|run`: the per-user warm worker the other commands reuse. */
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { table } from '../format.js';
import { idleMs } from '../worker.js';
import { DEFAULT_IDLE_MS, stopDaemon } from '../warm/connect.js';
import { FAILED_PREFIX, READY_PREFIX, runDaemon } from '../warm/daemon.js';
import { ensureDaemon } from '../warm/start.js';
import { type WarmState, formatIdle, liveLeases, liveState, parseDuration, warmDir } from '../warm/state.js';
import { join } from 'node:path';

export const worker: Command = {
  name: 'worker',
  summary: 'start, stop or show the warm worker that commands reuse (start-up and loaded models are paid once)',
  usage: 'worker start|stop|status|run [--idle <duration>]',
  description: `Commands other than train use a per-user warm worker: the first one starts it in the background
(through the SDK's own start path: an ipc socket in a folder only you can enter), later ones connect to it
and skip the worker's start-up (importing torch, loading the model). It stops after --idle with no command
using it (default ${formatIdle(DEFAULT_IDLE_MS)}; $SOFTPROMPT_WORKER_IDLE sets it for on-demand starts; 0 = never),
on \`worker stop\`, or when it dies. It keeps the environment and --python of the command that started it;
\`worker stop\` and the next command start a fresh one. --no-warm (or SOFTPROMPT_WARM=0) runs a command on a
worker of its own; --connect ENDPOINT uses a served worker instead.

  start    start it now (no-op when it runs)        stop     stop it (waits for it to exit)
  status   is it running, where, since when          run      run it in the foreground (Ctrl-C stops it)

Its files (state, leases, worker.log) are in $SOFTPROMPT_CACHE_DIR/worker (default ~/.cache/softprompt/worker).
--json: status and start print {"running", "pid", "workerPid", "endpoint", "python", ...}.`,
  options: {
    idle: { type: 'string', arg: 'duration', help: `start/run: stop after this long unused (30s, 15m, 2h; 0 never). Default ${formatIdle(DEFAULT_IDLE_MS)}` },
  },
  positionals: [1, 1],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const action = args.positionals[0]!;
  const dir = warmDir();
  const raw = args.string('idle');
  const idle = raw === undefined ? idleMs() : parseDuration(raw);
  if (idle === undefined) throw new UsageError(`--idle: expected a duration such as 30s, 15m or 2h, got '${raw}'`);
  const python = args.string('python');
  switch (action) {
    case 'status': {
      const state = liveState(dir);
      if (out.json) await out.data(state ? { running: true, ...state, commands: liveLeases(dir) } : { running: false });
      else out.print(state ? describe(state, liveLeases(dir)) : 'no warm worker runs (the next command starts one; or: softprompt worker start)');
      return EXIT.ok;
    }
    case 'start': {
      const had = liveState(dir);
      if (!had && !out.json) out.note('starting the warm worker…');
      const state = had ?? (await ensureDaemon({ dir, python, idleMs: idle, timeoutMs: 180_000 }));
      if (out.json) await out.data({ running: true, ...state, started: !had });
      else out.print(`${had ? 'already running' : 'started'}\n${describe(state, liveLeases(dir))}`);
      return EXIT.ok;
    }
    case 'stop': {
      const state = liveState(dir);
      const stopped = state ? await stopDaemon(state) : false;
      if (out.json) await out.data({ stopped });
      else out.print(stopped ? `stopped the warm worker (pid ${state!.pid})` : 'no warm worker runs');
      return EXIT.ok;
    }
    case 'run':
      return foreground(ctx, dir, python, idle);
    default:
      throw new UsageError(`worker: expected start, stop, status or run, got '${action}' (see softprompt worker --help)`);
  }
}

/** `worker run`: the daemon itself. Its starter reads the READY/FAILED line on stdout. */
async function foreground(ctx: CommandContext, dir: string, python: string | undefined, idle: number): Promise<ExitCode> {
  const tty = (process.stdout as { isTTY?: boolean }).isTTY === true;
  try {
    const why = await runDaemon({
      dir,
      python,
      idleMs: idle,
      log: join(dir, 'worker.log'),
      write: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      ready: (state) => {
        if (tty) ctx.out.print(`warm worker ready (pid ${state.pid}, worker pid ${state.workerPid}) at ${state.endpoint}; Ctrl-C stops it`);
        else process.stdout.write(`${READY_PREFIX}${JSON.stringify(state)}\n`);
      },
    });
    if (tty) ctx.out.print(`stopped: ${why}`);
    return EXIT.ok;
  } catch (error) {
    if (!tty) process.stdout.write(`${FAILED_PREFIX}${JSON.stringify({ message: (error as Error).message })}\n`);
    throw error;
  }
}

function describe(state: WarmState, commands: number): string {
  const since = Math.round((Date.now() - Date.parse(state.startedAt)) / 1000);
  return table([
    ['daemon pid', String(state.pid)],
    ['worker pid', String(state.workerPid)],
    ['endpoint', state.endpoint],
    ['python', state.python],
    ['versions', `softprompt ${state.sdkVersion}, worker ${state.workerVersion}`],
    ['up', `${since} s (since ${state.startedAt})`],
    ['idle timeout', formatIdle(state.idleMs)],
    ['commands using it', String(commands)],
    ['log', state.log],
  ]);
}
