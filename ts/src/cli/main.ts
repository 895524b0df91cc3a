#!/usr/bin/env node
/**
 * `softprompt`: the command line over the SDK. This file finds the command, parses its arguments,
 * runs it with Ctrl-C handling and a lazily started client, and turns the outcome into an exit code
 * (exit-codes.ts). Each command lives in commands/<name>.ts.
 */
import type { Softprompt } from '../client.js';
import { packageVersion } from '../internal/package.js';
import { parse } from './args.js';
import type { Command } from './command.js';
import { COMMANDS } from './commands.js';
import { EXIT, UsageError, exitCodeFor } from './exit-codes.js';
import { commandHelp, mainHelp } from './help.js';
import { Output } from './output.js';
import { handleInterrupts } from './signals.js';
import { closest } from './suggest.js';
import { type CommandClient, openClient, warmByDefault } from './worker.js';

/** Global options that take a value (so the command name is found after them). */
const VALUED_GLOBALS = new Set(['--python', '--log-level', '--connect', '--keys', '--key-name']);

/** Runs the CLI on `argv` (without `node main.js`); resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const out = new Output(json);
  const index = argv.findIndex((a, i) => !a.startsWith('-') && !VALUED_GLOBALS.has(argv[i - 1] ?? ''));
  const name = index === -1 ? undefined : argv[index];
  const rest = index === -1 ? [...argv] : [...argv.slice(0, index), ...argv.slice(index + 1)];

  if (name === undefined || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest.find((a) => !a.startsWith('-'))) : undefined;
    if (argv.includes('--version') || argv.includes('-v')) {
      out.print(packageVersion());
      if (json) await out.data({ version: packageVersion() });
      return EXIT.ok;
    }
    const asked = name === 'help' || argv.includes('--help') || argv.includes('-h');
    (asked ? process.stdout : process.stderr).write(topic ? commandHelp(topic) : mainHelp(COMMANDS, packageVersion()));
    return asked ? EXIT.ok : EXIT.usage;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    const hint = closest(name, COMMANDS.map((c) => c.name));
    const guess = hint ? `did you mean '${hint}'? ` : '';
    out.error(new UsageError(`unknown command '${name}'; ${guess}commands: ${COMMANDS.map((c) => c.name).join(', ')} (see softprompt --help)`));
    return EXIT.usage;
  }
  return runCommand(command, rest, out);
}

async function runCommand(command: Command, argv: readonly string[], out: Output): Promise<number> {
  let client: Promise<CommandClient> | undefined;
  const interrupts = handleInterrupts(out);
  try {
    const args = parse(argv, command.options, command.positionals, command.name);
    if (args.bool('help')) {
      process.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    const connect = args.string('connect');
    const workerOptions = {
      python: args.string('python'),
      logLevel: args.logLevel(),
      connect,
      keys: args.string('keys'),
      keyName: args.string('key-name'),
      warm: !command.ownWorker && !args.bool('no-warm') && warmByDefault(),
    };
    if (connect === undefined && (workerOptions.keys ?? workerOptions.keyName) !== undefined) throw new UsageError('--keys and --key-name go with --connect');
    const ctx = {
      args,
      out,
      signal: interrupts.signal,
      client: (): Promise<Softprompt> => (client ??= openClient(workerOptions, out)).then((c) => c.sp),
    };
    const code = await command.run(ctx);
    return interrupts.signal.aborted && code === EXIT.ok ? EXIT.cancelled : code;
  } catch (error) {
    const code = interrupts.signal.aborted ? EXIT.cancelled : exitCodeFor(error);
    if (code === EXIT.cancelled) out.note('softprompt: cancelled');
    else out.error(error);
    if (code === EXIT.workerStart && !out.json) out.note('softprompt: `softprompt doctor` checks the worker\'s Python and says what to install.');
    return code;
  } finally {
    if (client) await client.then(async ({ sp, release }) => (await sp.close(), release()), () => {});
    interrupts.dispose();
  }
}

// `softprompt embed ... | head`: a closed stdout ends the command quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  throw error;
});

const code = await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error('softprompt: internal error:', error);
  return EXIT.failure;
});
process.exitCode = code;
// A worker that will not let go must not keep the CLI alive (the worker dies with us).
setTimeout(() => process.exit(code), 3_000).unref();
