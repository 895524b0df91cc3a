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

/** Guesses the level of a worker stderr line from its first words (Python logging puts it there). */
export function levelOfLine(line: string): LogLevel {
  const head = line.slice(0, 80);
  for (const [re, level] of LEVEL_WORDS) if (re.test(head)) return level;
  return 'info';
}
