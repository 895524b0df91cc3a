/**
 * examples/electron-main.ts with stand-ins for Electron's `app` and `ipcMain`, laid out like a
 * packaged app: the worker's Python files copied to `resources/app.asar.unpacked/node_modules/
 * softprompt/python` (what `asarUnpack` produces) and the interpreter at `resources/python/bin/python3`
 * (a script that runs the project's .venv). The worker must start from those paths, answer the IPC
 * channels, and be gone after `will-quit`. examples/methods.ts (the README's per-method snippets) then
 * runs on the same client, one method at a time with 2 steps on a tiny GPT-2. ~15 s wall.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppLike, type IpcMainLike, startSoftpromptService, workerPathFor } from '../../../examples/electron-main.js';
import { pTuningExample, passageTuningExample, prefixTuningExample, promptTuningExample, suffixTuningExample } from '../../../examples/methods.js';
import type { ModelSpec, Softprompt } from '../../../ts/src/index.js';
import { quietLogger, venvPython } from '../helpers.js';
import { root } from './run-example.js';

class FakeApp extends EventEmitter implements AppLike {
  readonly isPackaged = true;
  quits = 0;
  constructor(readonly appPath: string) {
    super();
  }
  getAppPath(): string {
    return this.appPath;
  }
  quit(): void {
    this.quits++;
    this.emit('will-quit', { preventDefault: () => {} });
  }
}

class FakeIpcMain implements IpcMainLike {
  readonly handlers = new Map<string, (event: unknown, ...args: unknown[]) => unknown>();
  handle(channel: string, listener: (event: unknown, ...args: unknown[]) => unknown): void {
    this.handlers.set(channel, listener);
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }
  invoke(channel: string, ...args: unknown[]): Promise<unknown> {
    const handler = this.handlers.get(channel);
    if (!handler) return Promise.reject(new Error(`No handler registered for '${channel}'`));
    return Promise.resolve(handler({}, ...args));
  }
}

const model: ModelSpec = { tiny: 'gpt2' };

describe('examples/electron-main.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'softprompt-electron-test-'));
  const resources = join(dir, 'resources');
  const app = new FakeApp(join(resources, 'app.asar'));
  const ipcMain = new FakeIpcMain();
  let service: ReturnType<typeof startSoftpromptService>;
  let sp: Softprompt;

  beforeAll(async () => {
    const unpacked = workerPathFor(app)!;
    expect(unpacked).toBe(join(resources, 'app.asar.unpacked', 'node_modules', 'softprompt', 'python'));
    cpSync(join(root, 'python', 'softprompt_worker'), join(unpacked, 'softprompt_worker'), { recursive: true });
    mkdirSync(join(resources, 'python', 'bin'), { recursive: true });
    writeFileSync(join(resources, 'python', 'bin', 'python3'), `#!/bin/sh\nexec "${venvPython}" "$@"\n`);
    chmodSync(join(resources, 'python', 'bin', 'python3'), 0o755);
    service = startSoftpromptService({ app, ipcMain, resourcesPath: resources }, { model, start: { logger: quietLogger(), env: { OMP_NUM_THREADS: '1' } } });
    sp = await service.ready;
  });
  afterAll(async () => {
    await service?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(process.platform !== 'linux')('starts the worker with the bundled interpreter and the unpacked Python files (/proc)', () => {
    const environ = readFileSync(`/proc/${sp.workerPid}/environ`, 'utf8').split('\0');
    expect(environ.find((v) => v.startsWith('PYTHONPATH='))).toBe(`PYTHONPATH=${workerPathFor(app)}`);
    const cmdline = readFileSync(`/proc/${sp.workerPid}/cmdline`, 'utf8').split('\0');
    expect(cmdline).toContain('softprompt_worker');
  });

  it('answers the IPC channels, and a bad argument from the renderer with a ValidationError message', async () => {
    const embedded = (await ipcMain.invoke('softprompt:embed', ['a', 'b'])) as { dim: number; embeddings: number[][] };
    expect(embedded.embeddings).toHaveLength(2);
    expect(embedded.embeddings[0]).toHaveLength(embedded.dim);
    const ranked = (await ipcMain.invoke('softprompt:rerank', 'q', ['x', 'y', 'z'])) as { index: number }[];
    expect(ranked.map((r) => r.index).sort()).toEqual([0, 1, 2]);
    await expect(ipcMain.invoke('softprompt:embed', 'not a list')).rejects.toThrow(/texts/);
  });

  describe('examples/methods.ts (the README snippets), 2 steps each', () => {
    const runs = join(dir, 'runs');
    it('prompt tuning → classify', async () => {
      const predictions = await promptTuningExample(sp, model, runs, 2);
      expect(predictions).toHaveLength(1);
      expect(['bug', 'feature', 'question']).toContain(predictions[0]);
    });
    it('prefix tuning → generate', async () => {
      expect(await prefixTuningExample(sp, model, runs, 2)).toHaveLength(1);
    });
    it('P-tuning → classify', async () => {
      const predictions = await pTuningExample(sp, model, runs, 2);
      expect(predictions).toHaveLength(1);
      expect(['yes', 'no']).toContain(predictions[0]);
    });
    it('suffix tuning → embed', async () => {
      const { rows, dim, similarity } = await suffixTuningExample(sp, model, runs, 2);
      expect(rows).toBe(2);
      expect(dim).toBeGreaterThan(0);
      expect(Math.abs(similarity)).toBeLessThanOrEqual(1 + 1e-6);
    });
    it('passage tuning → rerank', async () => {
      const passages = await passageTuningExample(sp, model, runs, 2);
      expect(passages.map((p) => p.index).sort()).toEqual([0, 1]);
    });
    it('the README shows each snippet as it is in examples/methods.ts', () => {
      const source = readFileSync(join(root, 'examples', 'methods.ts'), 'utf8');
      const readme = readFileSync(join(root, 'README.md'), 'utf8');
      for (const region of ['prompt', 'passage', 'prefix', 'p-tuning', 'suffix']) {
        const body = new RegExp(`// #region ${region}\\n([\\s\\S]*?)\\n\\s*// #endregion`).exec(source)![1]!;
        const dedented = body.split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n');
        expect(readme, `README snippet for ${region}`).toContain(dedented);
      }
    });
  });

  it('will-quit holds the quit until the worker is stopped, then quits', async () => {
    const pid = sp.workerPid!;
    let prevented = 0;
    app.emit('will-quit', { preventDefault: () => prevented++ });
    expect(prevented).toBe(1);
    await service.close();
    await new Promise((r) => setImmediate(r));
    expect(app.quits).toBe(1);
    expect(ipcMain.handlers.size).toBe(0);
    expect(() => process.kill(pid, 0)).toThrow(); // the worker is gone
  });
});
