/**
 * Using the SDK from an Electron app's main process.
 *
 * **Main process only.** The SDK spawns a Python worker and talks to it over ZeroMQ, a native addon:
 * both belong in the main process. The renderer never imports 'softprompt'; it calls the main process
 * over IPC (`ipcRenderer.invoke('softprompt:embed', texts)`), exposed by a preload script:
 *
 *     // preload.ts
 *     contextBridge.exposeInMainWorld('softprompt', {
 *       embed: (texts: string[]) => ipcRenderer.invoke('softprompt:embed', texts),
 *       rerank: (query: string, passages: string[]) => ipcRenderer.invoke('softprompt:rerank', query, passages),
 *     });
 *
 * **Python.** The SDK picks the interpreter in this order: `StartOptions.python`, then
 * `$SOFTPROMPT_PYTHON`, then `.venv/bin/python` in the softprompt package folder, then `python3` on
 * PATH. A packaged app should not rely on the user's Python: ship an interpreter with torch,
 * transformers and peft installed (e.g. a python-build-standalone tree under electron-builder
 * `extraResources`, so it lands in `process.resourcesPath/python`) and pass its path as `python`.
 * In development (`app.isPackaged` false) leave it unset and the project's `.venv` is used.
 *
 * **The worker's Python files and asar.** Python cannot read files inside `app.asar`. Unpack them:
 *
 *     // electron-builder config
 *     "asarUnpack": ["node_modules/softprompt/python/**"]
 *
 * and pass the unpacked folder as `workerPath` (the folder that holds `softprompt_worker/`):
 * `<resources>/app.asar.unpacked/node_modules/softprompt/python` ({@link workerPathFor}). ZeroMQ's
 * `.node` binaries must live outside the asar too; electron-builder unpacks `.node` files by itself
 * (zeromq is an N-API addon, so no rebuild for Electron's ABI is needed).
 *
 * **Quit.** `app.on('will-quit')` holds the quit until `sp.close()` has stopped the worker (it would
 * also die with the app: it watches its parent's pid; closing lets it finish cleanly).
 *
 * Electron is not a dependency of this repository, so the Electron objects are typed by the small
 * interfaces below ({@link ElectronMain}); in the app's main file:
 *
 *     import { app, ipcMain } from 'electron';
 *     import { startSoftpromptService } from './softprompt-service.js';   // this file
 *     const service = startSoftpromptService({ app, ipcMain, resourcesPath: process.resourcesPath });
 *
 * test/ts/examples/electron-main.test.ts drives it with stand-ins for `app` and `ipcMain`. In your own
 * code import from 'softprompt' instead of '../ts/src/index.js'.
 */
import { join } from 'node:path';
import { type ModelSpec, Softprompt, type StartOptions } from '../ts/src/index.js';

/** The part of Electron's `app` used here. */
export interface AppLike {
  readonly isPackaged: boolean;
  /** `.../resources/app.asar` when packaged. */
  getAppPath(): string;
  on(event: 'will-quit', listener: (event: { preventDefault(): void }) => void): unknown;
  quit(): void;
}

/** The part of Electron's `ipcMain` used here. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: unknown, ...args: unknown[]) => unknown): void;
  removeHandler(channel: string): void;
}

export interface ElectronMain {
  readonly app: AppLike;
  readonly ipcMain: IpcMainLike;
  /** `process.resourcesPath` (Electron sets it; where `extraResources` land). */
  readonly resourcesPath: string;
}

export interface ServiceOptions {
  /** The base model of the prompts (a local folder shipped with the app, or a hub id). */
  readonly model?: ModelSpec;
  /** Suffix-tuning checkpoint for `softprompt:embed`; without it the base model embeds. */
  readonly embedCheckpoint?: string;
  /** Passage-tuning checkpoint for `softprompt:rerank`; without it the base model reranks (UPR). */
  readonly rerankCheckpoint?: string;
  /** More start options (a logger, `env`, ...), merged over what this file derives. */
  readonly start?: StartOptions;
}

/** The unpacked copy of the worker's Python files in a packaged app; `undefined` in development. */
export function workerPathFor(app: AppLike): string | undefined {
  if (!app.isPackaged) return undefined;
  return join(`${app.getAppPath()}.unpacked`, 'node_modules', 'softprompt', 'python');
}

/** The bundled interpreter in a packaged app (see the header); `undefined` in development. */
export function pythonFor(app: AppLike, resourcesPath: string): string | undefined {
  if (!app.isPackaged) return undefined;
  return process.platform === 'win32' ? join(resourcesPath, 'python', 'python.exe') : join(resourcesPath, 'python', 'bin', 'python3');
}

/** What {@link startSoftpromptService} returns. */
export interface SoftpromptService {
  /** The client, once its worker is up and the prompts are loaded. */
  readonly ready: Promise<Softprompt>;
  /** Removes the IPC handlers and stops the worker (what `will-quit` does). */
  close(): Promise<void>;
}

/**
 * Starts the worker when the app starts, answers `softprompt:embed` / `softprompt:rerank` over IPC,
 * and stops the worker before the app quits.
 */
export function startSoftpromptService({ app, ipcMain, resourcesPath }: ElectronMain, options: ServiceOptions = {}): SoftpromptService {
  const python = pythonFor(app, resourcesPath);
  const workerPath = workerPathFor(app);
  const ready = (async () => {
    const sp = await Softprompt.start({ ...(python ? { python } : {}), ...(workerPath ? { workerPath } : {}), ...options.start });
    if (options.embedCheckpoint) await sp.prompts.load('embed', options.embedCheckpoint, options.model ? { model: options.model } : {});
    if (options.rerankCheckpoint) await sp.prompts.load('rerank', options.rerankCheckpoint, options.model ? { model: options.model } : {});
    return sp;
  })();
  const embedWith = options.embedCheckpoint ? { prompt: 'embed' } : { model: options.model! };
  const rerankWith = options.rerankCheckpoint ? { prompt: 'rerank' } : { model: options.model! };

  // Arguments from a renderer are untrusted input: the SDK validates them (ValidationError names the
  // field), and the rejection reaches the renderer's invoke() as an Error with that message.
  ipcMain.handle('softprompt:embed', async (_event, texts) => {
    const vectors = await (await ready).embed({ ...embedWith, texts: texts as string[] });
    return { dim: vectors.dim, embeddings: vectors.toArray() }; // plain arrays: IPC structured-clones them
  });
  ipcMain.handle('softprompt:rerank', async (_event, query, passages) => {
    const { passages: ranked } = await (await ready).rerank({ ...rerankWith, query: query as string, passages: passages as string[] });
    return ranked.map((p) => ({ index: p.index, score: p.meanLogLikelihood }));
  });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      ipcMain.removeHandler('softprompt:embed');
      ipcMain.removeHandler('softprompt:rerank');
      await (await ready.catch(() => undefined))?.close();
    })());

  let closed = false;
  app.on('will-quit', (event) => {
    if (closed) return; // second pass: the worker is gone, let the app quit
    event.preventDefault();
    void close().finally(() => {
      closed = true;
      app.quit();
    });
  });
  return { ready, close };
}
