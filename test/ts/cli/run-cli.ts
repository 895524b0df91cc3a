/**
 * Runs the `softprompt` CLI as a child process, as users do. The CLI's source is bundled once per test
 * file with esbuild (well under a second; packages stay external), into a folder under the package so
 * it finds node_modules and the package root exactly as ts/dist/cli/main.js does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../../', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Bundles ts/src/cli/main.ts; returns the entry to run and a cleanup. */
export async function buildCli(): Promise<{ entry: string; dispose: () => void }> {
  const dir = join(root, 'node_modules', '.cache', 'softprompt-cli-test', `${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, 'main.mjs');
  await build({
    entryPoints: [join(root, 'ts', 'src', 'cli', 'main.ts')],
    outfile: entry,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'error',
  });
  return { entry, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SpawnOptions {
  readonly stdin?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** Starts the CLI; stdin is closed after `options.stdin` is written. */
export function spawnCli(entry: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(process.execPath, [entry, ...args], {
    cwd: options.cwd ?? root,
    // A warm worker a test forgets to stop goes away by itself a minute after its last command.
    env: { ...process.env, OMP_NUM_THREADS: '1', SOFTPROMPT_WORKER_IDLE: '60s', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.end(options.stdin ?? '');
  return child;
}

/** Collects a child's output and exit code. */
export function finish(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the CLI to the end. */
export function runCli(entry: string, args: readonly string[], options?: SpawnOptions): Promise<CliResult> {
  return finish(spawnCli(entry, args, options));
}

/** Resolves with the first stdout line `match` accepts (the child keeps running). */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (match(line)) resolve(line);
    });
    child.on('close', (code) => reject(new Error(`the CLI exited (${code}) before the line came`)));
  });
}

/** JSON lines → values. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
