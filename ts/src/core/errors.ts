/**
 * Every error the SDK throws is a {@link SoftpromptError}. Subclasses say where it came from:
 *
 * | class | thrown when |
 * | --- | --- |
 * | {@link ValidationError} | an argument did not validate, before anything was sent |
 * | {@link RemoteError} | the worker answered with an error (`code` is the shared `ErrorCode` name) |
 * | {@link ProtocolError} | the worker sent something this SDK cannot read |
 * | {@link WorkerStartError} | the worker could not be started or reached (Python, packages, protocol version, keys) |
 * | {@link WorkerCrashedError} | the worker died while the call was open |
 * | {@link ConnectionLostError} | the connection to a remote worker (`Softprompt.connect`) broke while the call was open |
 * | {@link TimeoutError} | the call ran past its `timeoutMs` |
 * | {@link AbortError} | the caller's `AbortSignal` fired, or the stream was left early |
 *
 * Errors chain with the standard `cause`.
 */
import type { ZodError } from 'zod';
import { ErrorCode } from '../gen/softprompt/v1/errors.js';

type ErrorCodeKey = Exclude<keyof typeof ErrorCode, 'UNRECOGNIZED' | 'ERROR_CODE_UNSPECIFIED'>;

/**
 * A worker error code as it travels on the wire: an `ErrorCode` name from `errors.proto`, lower-cased,
 * without its prefix (`'invalid_argument'`, `'not_found'`, ...).
 */
export type RemoteErrorCode = ErrorCodeKey extends `ERROR_CODE_${infer N}` ? Lowercase<N> : never;

/** Codes of errors raised by the SDK itself, never sent by the worker. */
export type LocalErrorCode =
  | 'validation'
  | 'protocol'
  | 'worker_start'
  | 'worker_crashed'
  | 'connection_lost'
  | 'timeout'
  | 'aborted'
  | 'closed'
  | 'invalid_state';

/** Every value {@link SoftpromptError.code} can take. */
export type SoftpromptErrorCode = RemoteErrorCode | LocalErrorCode;

/** All remote codes, derived from the generated `ErrorCode` enum (one source of truth). */
export const REMOTE_ERROR_CODES: ReadonlySet<string> = new Set(
  Object.keys(ErrorCode)
    .filter((k) => k.startsWith('ERROR_CODE_') && k !== 'ERROR_CODE_UNSPECIFIED')
    .map((k) => k.slice('ERROR_CODE_'.length).toLowerCase()),
);

/** The root of every error the SDK throws. */
export class SoftpromptError extends Error {
  /** A stable, machine-readable code; see {@link SoftpromptErrorCode}. */
  readonly code: SoftpromptErrorCode;

  constructor(code: SoftpromptErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An argument or option failed validation; the message names each bad field by its path. */
export class ValidationError extends SoftpromptError {
  /** One line per problem, each `path: problem`. */
  readonly issues: readonly string[];

  constructor(message: string, issues: readonly string[] = [message], options?: ErrorOptions) {
    super('validation', message, options);
    this.issues = issues;
  }

  /**
   * Builds a ValidationError from a zod error, naming fields from `root`, e.g.
   * `options.startTimeoutMs: expected number, received string`.
   */
  static fromZod(error: ZodError, root: string): ValidationError {
    const issues = error.issues.flatMap((issue) => {
      const path = root + issue.path.map(pathSegment).join('');
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${path}${pathSegment(k)}: unknown field`);
      return [`${path}: ${issue.message.replace(/^Invalid input: /, '')}`];
    });
    return new ValidationError(issues.join('; '), issues, { cause: error });
  }
}

/** `.name` or `.0` for a path segment; `["odd key"]` for a key that is not an identifier, so paths stay unambiguous. */
function pathSegment(key: PropertyKey): string {
  if (typeof key === 'number' || (typeof key === 'string' && /^([A-Za-z_$][\w$]*|\d+)$/.test(key))) return `.${key}`;
  return `[${typeof key === 'string' ? JSON.stringify(key) : String(key)}]`;
}

/** The worker sent a message this SDK cannot read, or the wire itself failed. */
export class ProtocolError extends SoftpromptError {
  constructor(message: string, options?: ErrorOptions) {
    super('protocol', message, options);
  }
}

/**
 * The worker could not be started (`Softprompt.start`) or reached (`Softprompt.connect`: unreachable,
 * the key refused). The message says what failed and how to fix it.
 */
export class WorkerStartError extends SoftpromptError {
  /** The last lines the worker wrote to stderr, if it got that far. */
  readonly stderrTail: string;

  constructor(message: string, options?: ErrorOptions & { stderrTail?: string }) {
    super('worker_start', message, options);
    this.stderrTail = options?.stderrTail ?? '';
  }
}

/** The worker process exited while a call was open. The client restarts it for the next call. */
export class WorkerCrashedError extends SoftpromptError {
  /** The exit code, or `null` when a signal ended the process. */
  readonly exitCode: number | null;
  /** The signal that ended the process (`'SIGKILL'`, ...), or `null`. */
  readonly signal: string | null;
  /** The last lines the worker wrote to stderr. */
  readonly stderrTail: string;

  constructor(exitCode: number | null, signal: string | null, stderrTail: string, options?: ErrorOptions) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail ? `\n--- worker stderr (last lines) ---\n${stderrTail}` : '';
    super('worker_crashed', `The softprompt worker ${how}.${tail}`, options);
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

/**
 * The connection to a remote worker (`Softprompt.connect`) broke while the call was open (the worker
 * stopped, the network failed, or heartbeats went unanswered), or did not come back within
 * `reconnectWaitMs`. The client keeps reconnecting by itself: a later call works once the worker is
 * reachable again. Whether the worker finished the call is unknown.
 */
export class ConnectionLostError extends SoftpromptError {
  /** The worker's endpoint, e.g. `tcp://gpu-box:5555`. */
  readonly endpoint: string;

  constructor(endpoint: string, reason: string, options?: ErrorOptions) {
    super('connection_lost', `The connection to the softprompt worker at ${endpoint} was lost (${reason}); the client reconnects by itself, so the call can be retried.`, options);
    this.endpoint = endpoint;
  }
}

/** The call ran past its deadline; the SDK asked the worker to cancel it. */
export class TimeoutError extends SoftpromptError {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(op: string, timeoutMs: number, options?: ErrorOptions) {
    super('timeout', `${op} timed out after ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** The call was cancelled by the caller (an `AbortSignal`, or leaving a stream early). */
export class AbortError extends SoftpromptError {
  constructor(message = 'The operation was aborted', options?: ErrorOptions) {
    super('aborted', message, options);
  }
}

/** The worker answered with an error. `code` is the shared `ErrorCode` name. */
export class RemoteError extends SoftpromptError {
  declare readonly code: RemoteErrorCode;
  /** The op of the failed request (`''` when the worker could not read it). */
  readonly op: string;
  /** Structured details from the worker, e.g. `{ type: 'ValueError' }` for `internal`. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: RemoteErrorCode,
    message: string,
    op: string,
    details: Readonly<Record<string, unknown>> = {},
    options?: ErrorOptions,
  ) {
    super(code, `${op || 'request'} failed (${code}): ${message}`, options);
    this.op = op;
    this.details = details;
  }
}

/** The client was closed; no more calls can be made. */
export class ClientClosedError extends SoftpromptError {
  constructor(options?: ErrorOptions) {
    super('closed', 'This Softprompt client is closed', options);
  }
}
