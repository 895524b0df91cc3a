/**
 * Argument parsing on `node:util` parseArgs: each command declares its options once
 * ({@link OptionSpec}); the parser config and the `--help` text are both made from that declaration.
 */
import { parseArgs } from 'node:util';
import type { LogLevel } from '../core/logger.js';
import { UsageError } from './exit-codes.js';
import { closest } from './suggest.js';

/** One `--option`. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** One-letter alias (`-o`). */
  readonly short?: string;
  /** May be given more than once (values collect in order). */
  readonly multiple?: boolean;
  /** The value's placeholder in help: `--model <spec>`. */
  readonly arg?: string;
  /** One sentence; state the default. */
  readonly help: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  json: { type: 'boolean', help: 'machine output: one JSON document (or JSON lines) on stdout, nothing else; errors as JSON on stderr' },
  python: { type: 'string', arg: 'path', help: 'the worker\'s Python. Default: $SOFTPROMPT_PYTHON, then a checkout\'s .venv, then the one `softprompt setup` made, then python3' },
  'log-level': { type: 'string', arg: 'level', help: 'worker and SDK log lines on stderr at this level and above: debug, info, warn, error. Default warn' },
  connect: { type: 'string', arg: 'endpoint', help: 'use the worker served at this endpoint (softprompt-worker serve: tcp://HOST:PORT with --keys, or ipc://PATH). Default: the warm worker' },
  keys: { type: 'string', arg: 'dir', help: "with --connect tcp://: the folder with the server's server.key and this client's NAME.key_secret" },
  'key-name': { type: 'string', arg: 'name', help: "with --keys: the client key pair's name in that folder. Default client" },
  'no-warm': { type: 'boolean', help: 'run this command on a worker of its own instead of the warm one (also: SOFTPROMPT_WARM=0)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} as const satisfies OptionSpecs;

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

type Value = string | boolean | (string | boolean)[] | undefined;

/** Parsed arguments with typed accessors whose errors name the flag (`--steps: expected an integer`). */
export class Args {
  readonly positionals: readonly string[];
  readonly #values: Readonly<Record<string, Value>>;

  constructor(values: Record<string, Value>, positionals: readonly string[]) {
    this.#values = values;
    this.positionals = positionals;
  }

  has(name: string): boolean {
    return this.#values[name] !== undefined;
  }

  string(name: string): string | undefined {
    const v = this.#values[name];
    return typeof v === 'string' ? v : undefined;
  }

  bool(name: string): boolean {
    return this.#values[name] === true;
  }

  /** `--no-<name>` / `--<name>`: true, false, or undefined when neither was given. */
  flag(name: string): boolean | undefined {
    if (this.bool(`no-${name}`)) return false;
    return this.bool(name) ? true : undefined;
  }

  list(name: string): string[] {
    const v = this.#values[name];
    return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
  }

  number(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name}: expected a number, got '${raw}'`);
    return n;
  }

  int(name: string): number | undefined {
    const n = this.number(name);
    if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`--${name}: expected an integer, got '${this.string(name)}'`);
    return n;
  }

  ints(name: string): number[] {
    return this.list(name).flatMap((raw) =>
      raw.split(',').map((part) => {
        const n = Number(part);
        if (part.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--${name}: expected integers, got '${raw}'`);
        return n;
      }),
    );
  }

  /** The `--log-level` value. */
  logLevel(): LogLevel {
    const raw = this.string('log-level') ?? 'warn';
    if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got '${raw}'`);
    return raw as LogLevel;
  }
}

/** Parses `argv` against `options` (plus the global ones); unknown options are usage errors. */
export function parse(argv: readonly string[], options: OptionSpecs, positionals: readonly [number, number], command: string): Args {
  const all: OptionSpecs = { ...GLOBAL_OPTIONS, ...options };
  const config = Object.fromEntries(
    Object.entries(all).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options: config, allowPositionals: true, strict: true });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify.*$/s, '');
    const typed = /^Unknown option '(--?[^']+)'/.exec(message)?.[1];
    const names = Object.entries(all).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
    const hint = typed === undefined ? undefined : closest(typed.split('=')[0]!, names);
    throw new UsageError(`${message}${hint ? `; did you mean '${hint}'?` : ''} (see softprompt ${command} --help)`, [], { cause: error });
  }
  const args = new Args(parsed.values as Record<string, Value>, parsed.positionals);
  if (args.bool('help')) return args;
  const [min, max] = positionals;
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`missing argument${min - n > 1 ? 's' : ''} (see softprompt ${command} --help)`);
  if (n > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}' (see softprompt ${command} --help)`);
  return args;
}

/** The option table of a help text. */
export function formatOptions(options: OptionSpecs): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` <${o.arg}>` : ''}${o.multiple ? ' ...' : ''}`;
    return [flag, o.help] as const;
  });
  const width = Math.min(34, Math.max(...rows.map(([f]) => f.length)) + 2);
  return rows.map(([flag, help]) => (flag.length + 2 > width ? `  ${flag}\n  ${' '.repeat(width)}${help}` : `  ${flag.padEnd(width)}${help}`)).join('\n');
}
