/**
 * The CLI's exit codes, in one place (`softprompt --help` prints this table).
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | success (`doctor`: nothing is missing) |
 * | 1 | failure: the worker reported an error, a file could not be read, `doctor` found a problem |
 * | 2 | bad usage or validation: unknown option, bad argument, a job file or row that does not validate, and the
 * |   | worker's `invalid_argument` errors (a bad row or value it found in the data: `file:line`) |
 * | 3 | the worker could not start (Python or a package is missing: run `softprompt doctor`) |
 * | 4 | `plan`: the job does not fit the memory budget |
 * | 130 | cancelled by Ctrl-C (SIGINT); a cancelled training job keeps its last checkpoint |
 */
import { AbortError, RemoteError, SoftpromptError, ValidationError, WorkerStartError } from '../core/errors.js';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  workerStart: 3,
  doesNotFit: 4,
  cancelled: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The help text's table, generated from {@link EXIT} and these words. */
export const EXIT_HELP: readonly (readonly [ExitCode, string])[] = [
  [EXIT.ok, 'success (doctor: nothing is missing)'],
  [EXIT.failure, 'failure (a worker error, an unreadable file, doctor found a problem)'],
  [EXIT.usage, 'bad usage or validation (unknown option, a job file, row or data file that does not validate)'],
  [EXIT.workerStart, 'the worker could not start (run `softprompt doctor`)'],
  [EXIT.doesNotFit, 'plan: the job does not fit the memory budget'],
  [EXIT.cancelled, 'cancelled by Ctrl-C; a cancelled training job keeps its last checkpoint'],
];

/** A command-line mistake: unknown option, missing argument, unreadable row. Exits with {@link EXIT.usage}. */
export class UsageError extends Error {
  /** One line per problem (`file:3: text: expected a string`). */
  readonly issues: readonly string[];

  constructor(message: string, issues: readonly string[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
    this.issues = issues;
  }
}

/** The exit code an error ends the process with. */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof UsageError || error instanceof ValidationError) return EXIT.usage;
  // The worker's own validation (a bad row in a data file, a value it refuses) is the user's input too.
  if (error instanceof RemoteError && error.code === 'invalid_argument') return EXIT.usage;
  if (error instanceof WorkerStartError) return EXIT.workerStart;
  if (error instanceof AbortError) return EXIT.cancelled;
  return EXIT.failure;
}

/** A stable machine-readable code for `--json` error documents. */
export function errorCodeOf(error: unknown): string {
  if (error instanceof UsageError) return 'usage';
  if (error instanceof SoftpromptError) return error.code;
  return 'internal';
}
