/** Every command, in the order `softprompt --help` lists them. Adding a command is one line here. */
import type { Command } from './command.js';
import { exportPeft, importPeft, inspect } from './commands/checkpoints.js';
import { doctor } from './commands/doctor.js';
import { embed } from './commands/embed.js';
import { evaluate } from './commands/eval.js';
import { generate } from './commands/generate.js';
import { rerank } from './commands/rerank.js';
import { train } from './commands/train.js';

export const COMMANDS: readonly Command[] = [train, generate, embed, rerank, evaluate, inspect, exportPeft, importPeft, doctor];
