/** Running helper programs for `doctor` and `setup`: a process's output, the NVIDIA GPU if any, shell quoting. */
import { execFile } from 'node:child_process';

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The program was not found (or is not executable). */
  readonly notFound: boolean;
}

/** Runs `command args` to the end (never throws): its exit code and output. */
export function runProcess(command: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & { code?: unknown }) | null;
      const notFound = e?.code === 'ENOENT' || e?.code === 'EACCES';
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : notFound ? null : 1) : 0, stdout: String(stdout), stderr: String(stderr), notFound });
    });
  });
}

export interface Gpu {
  readonly name: string;
  readonly driver: string;
  /** The highest CUDA version the driver supports (`12.4`), from nvidia-smi's header. */
  readonly cuda: string | undefined;
}

/** The first NVIDIA GPU `nvidia-smi` reports, or undefined when there is none (or no driver). */
export async function nvidia(): Promise<Gpu | undefined> {
  const ran = await runProcess('nvidia-smi', [], process.env, 15_000);
  if (ran.code !== 0) return undefined;
  const query = await runProcess('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], process.env, 15_000);
  const [name, driver] = (query.stdout.split('\n')[0] ?? '').split(',').map((s) => s.trim());
  return { name: name || 'GPU', driver: driver || '?', cuda: /CUDA Version:\s*([\d.]+)/.exec(ran.stdout)?.[1] };
}

/** A word as a POSIX shell reads it back: unquoted when safe, else in single quotes. */
export function quote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
