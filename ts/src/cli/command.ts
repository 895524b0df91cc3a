/**
 * What a command is: its help (usage, description, options, all declared once) and a `run` that
 * returns an exit code. Commands get a {@link CommandContext}: parsed arguments, output, the Ctrl-C
 * signal and a lazily started client.
 */
import type { Softprompt } from '../client.js';
import type { Args, OptionSpecs } from './args.js';
import type { ExitCode } from './exit-codes.js';
import type { Output } from './output.js';

export interface CommandContext {
  readonly args: Args;
  readonly out: Output;
  /**
   * Aborted by the first Ctrl-C (the second exits at once with 130). Pass it to SDK calls: they then
   * end with `AbortError` (exit 130), and a training job ends `cancelled` with a checkpoint.
   */
  readonly signal: AbortSignal;
  /**
   * The command's client (made once): the `--connect` worker, else the warm worker (started on demand),
   * else one of the command's own (`ownWorker`, `--no-warm`); `main` closes it at the end (worker.ts).
   */
  client(): Promise<Softprompt>;
}

export interface Command {
  readonly name: string;
  /** One line for `softprompt --help`. */
  readonly summary: string;
  /** `train <job.json|job.yaml> [options]` (after `softprompt `). */
  readonly usage: string;
  /** Paragraphs after the usage line: what it does, row shapes, examples. */
  readonly description: string;
  readonly options: OptionSpecs;
  /** Least and most positional arguments. */
  readonly positionals: readonly [number, number];
  /**
   * Runs on a worker of its own rather than the warm one, unless `--connect` is given: `train`, whose
   * long job would hold the warm worker (one compute op at a time) and which resumes itself on a
   * restarted worker of its own.
   */
  readonly ownWorker?: boolean;
  run(ctx: CommandContext): Promise<ExitCode>;
}
