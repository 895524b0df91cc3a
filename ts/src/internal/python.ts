/**
 * Finding the Python interpreter and the worker package that ship with this SDK.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSetupRecord } from './home.js';
import { packageRoot } from './package.js';

/** Where the interpreter choice came from; error messages name it. */
export type PythonSource = 'options.python' | 'SOFTPROMPT_PYTHON' | 'project .venv' | 'softprompt setup' | 'PATH';

export interface ResolvedPython {
  readonly command: string;
  readonly source: PythonSource;
}

/** The folder holding the `softprompt_worker` Python package; goes first on the worker's PYTHONPATH. */
export function workerPythonPath(): string {
  return join(packageRoot(), 'python');
}

/**
 * Picks the interpreter: `options.python`, then `$SOFTPROMPT_PYTHON`, then `<package root>/.venv/bin/python`
 * (what `make setup` builds in a source checkout), then the environment `softprompt setup` recorded
 * (`internal/home.ts`), then `python3` on PATH.
 */
export function resolvePython(option: string | undefined, env: NodeJS.ProcessEnv = process.env): ResolvedPython {
  if (option) return { command: option, source: 'options.python' };
  const fromEnv = env['SOFTPROMPT_PYTHON'];
  if (fromEnv) return { command: fromEnv, source: 'SOFTPROMPT_PYTHON' };
  const venv = join(packageRoot(), '.venv', 'bin', 'python');
  if (existsSync(venv)) return { command: venv, source: 'project .venv' };
  const setup = readSetupRecord(env);
  if (setup && existsSync(setup.python)) return { command: setup.python, source: 'softprompt setup' };
  return { command: 'python3', source: 'PATH' };
}

/** The sentence every start failure ends with: how to get a working interpreter. */
export const PYTHON_FIX =
  'Run `npx softprompt setup` (it builds the worker\'s Python environment: torch, transformers, peft and the worker; ' +
  '`make setup` in a source checkout), or set SOFTPROMPT_PYTHON (or options.python) to a Python >= 3.10 that has ' +
  'the worker\'s dependencies (`pip install` of this package\'s folder).';
