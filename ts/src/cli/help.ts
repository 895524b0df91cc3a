/** Help texts, made from the command declarations (one source of truth). */
import { GLOBAL_OPTIONS, formatOptions } from './args.js';
import type { Command } from './command.js';
import { EXIT_HELP } from './exit-codes.js';

export function commandHelp(c: Command): string {
  const own = Object.keys(c.options).length ? `\nOptions:\n${formatOptions(c.options)}\n` : '';
  return `Usage: softprompt ${c.usage}\n\n${c.summary}.\n\n${c.description}\n${own}\nGlobal options:\n${formatOptions(GLOBAL_OPTIONS)}\n`;
}

export function mainHelp(commands: readonly Command[], version: string): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  const list = commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n');
  const codes = EXIT_HELP.map(([code, what]) => `  ${String(code).padEnd(5)}${what}`).join('\n');
  return `softprompt ${version}: train and use soft prompts on real language models.

Usage: softprompt <command> [options]       softprompt <command> --help

Commands:
${list}

Global options (every command):
${formatOptions({ ...GLOBAL_OPTIONS, version: { type: 'boolean', short: 'v', help: 'print the version' } })}

Exit codes:
${codes}
`;
}
