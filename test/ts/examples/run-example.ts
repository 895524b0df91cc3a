/** Runs an example the way its header says (`npx vite-node examples/NAME.ts ...`), as a child process. */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../node_modules/vite-node/vite-node.mjs', import.meta.url));

/** Environment of the example runs: one torch thread each (the suite shares 2 cores). */
const env = { ...process.env, OMP_NUM_THREADS: '1' };

/** Runs `examples/<name>.ts args...` to the end; rejects on a non-zero exit. */
export async function runExample(name: string, args: readonly string[], timeoutMs = 90_000): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [viteNode, `examples/${name}.ts`, ...args], { cwd: root, env, timeout: timeoutMs, maxBuffer: 16 << 20 });
}

/** Starts `examples/<name>.ts args...` and leaves it running. */
export function startExample(name: string, args: readonly string[], extraEnv: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [viteNode, `examples/${name}.ts`, ...args], { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
}
