/**
 * Logging hooks. The SDK forwards the worker's stderr lines and its own diagnostics here.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A console-like logger, e.g. `console`, pino or winston instances. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A single logging function. */
export type LogFunction = (level: LogLevel, message: string) => void;

/** The default: warnings and errors to stderr, quieter levels dropped. */
export const defaultLogger: LogFunction = (level, message) => {
  if (level === 'warn' || level === 'error') console.error(`[softprompt] ${message}`);
};

/** Normalises either logger form to a {@link LogFunction}. */
export function toLogFunction(logger: Logger | LogFunction | undefined): LogFunction {
  if (logger === undefined) return defaultLogger;
  if (typeof logger === 'function') return logger;
  return (level, message) => logger[level](message);
}

const LEVEL_WORDS: ReadonlyArray<[RegExp, LogLevel]> = [
  [/\b(CRITICAL|ERROR|FATAL|Traceback)\b/, 'error'],
  [/\bWARN(ING)?\b/, 'warn'],
  [/\bDEBUG\b/, 'debug'],
];

/** The worker's record format: `2026-01-01 12:00:00,000 LEVEL logger: message`. */
const RECORD = /^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) /;
const RECORD_LEVELS: Readonly<Record<string, LogLevel>> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'error' };

/**
 * The level of a worker stderr line: from the worker's record format, else guessed from the first
 * words (raw Python output such as an uncaught traceback).
 */
export function levelOfLine(line: string): LogLevel {
  const record = RECORD.exec(line);
  if (record) return RECORD_LEVELS[record[1]!]!;
  const head = line.slice(0, 80);
  for (const [re, level] of LEVEL_WORDS) if (re.test(head)) return level;
  return 'info';
}
