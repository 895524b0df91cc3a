/** Every command, in the order `softprompt --help` lists them. Adding a command is one line here. */
import type { Command } from './command.js';
import { exportPeft, importPeft, inspect } from './commands/checkpoints.js';
import { classify } from './commands/classify.js';
import { doctor } from './commands/doctor.js';
import { embed } from './commands/embed.js';
import { evaluate } from './commands/eval.js';
import { generate } from './commands/generate.js';
import { plan } from './commands/plan.js';
import { rerank } from './commands/rerank.js';
import { setup } from './commands/setup.js';
import { status } from './commands/status.js';
import { sweep } from './commands/sweep.js';
import { train } from './commands/train.js';
import { worker } from './commands/worker.js';

export const COMMANDS: readonly Command[] = [setup, doctor, train, sweep, plan, classify, generate, embed, rerank, evaluate, inspect, exportPeft, importPeft, status, worker];
