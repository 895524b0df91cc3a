/**
 * The options of `Softprompt.start()` and the lifecycle events it reports: public types. Their schema,
 * defaults and parsing are internal (internal/options.ts).
 */
import type { LogFunction, Logger } from './logger.js';

/** Worker lifecycle notifications, delivered to `StartOptions.onLifecycle`. */
export type LifecycleEvent =
  | { readonly type: 'crash'; readonly exitCode: number | null; readonly signal: string | null; readonly stderrTail: string }
  | { readonly type: 'restart'; readonly attempt: number; readonly pid: number }
  | { readonly type: 'restart_failed'; readonly attempt: number; readonly error: Error };

/**
 * A data-parallel worker group (`StartOptions.distributed`, docs/distributed.md): the SDK starts it with
 * `python -m torch.distributed.run` and speaks to rank 0; training jobs run on every rank (DDP, one
 * micro-batch of `batchSize` rows per rank per step), everything else on rank 0.
 */
export interface DistributedOptions {
  /** Worker processes on this machine (torchrun `--nproc-per-node`): one per GPU, or CPU processes with gloo. */
  nprocPerNode: number;
  /** Machines in the group (default 1). More than one needs `rdzvEndpoint`; the other nodes are started with torchrun. */
  nnodes?: number;
  /** This machine's node rank: 0 (the default and the only value allowed), since rank 0 runs here. */
  nodeRank?: number;
  /** `HOST:PORT` on this machine that every node reaches (static rendezvous). Default: one node on a free local port. */
  rdzvEndpoint?: string;
  /** The run id all nodes pass to torchrun (`--rdzv-id`). */
  rdzvId?: string;
  /** Collective backend: `'auto'` (default: NCCL when the worker sees a GPU, else gloo), `'nccl'` or `'gloo'`. */
  backend?: 'auto' | 'nccl' | 'gloo';
}

/** Options of `Softprompt.start()`. Every field is optional. */
export interface StartOptions {
  /** Python interpreter. Default: `$SOFTPROMPT_PYTHON`, then the project's `.venv/bin/python`, then `python3`. */
  python?: string;
  /**
   * The folder that holds the worker's Python package (`softprompt_worker/`), put first on the
   * worker's `PYTHONPATH`. Default: `python/` in this package. Set it when this package's files are
   * not on disk as such, e.g. inside an Electron `app.asar`: unpack `python/**` (electron-builder
   * `asarUnpack`) and pass the `app.asar.unpacked/.../softprompt/python` folder (examples/electron-main.ts).
   */
  workerPath?: string;
  /** Extra environment variables for the worker (merged over `process.env`). */
  env?: Readonly<Record<string, string>>;
  /**
   * `'ipc'` (default: a Unix socket in a private 0700 folder under `<tmpdir>/sp-<uid>/`; refused when that
   * path is too long for a socket) or `'tcp'` (127.0.0.1, a kernel-chosen port, with a CURVE key pair made for
   * this worker and handed to it over stdin, so no other local user can connect).
   */
  transport?: 'ipc' | 'tcp';
  /** How long the worker may take to start and answer `hello`, in ms. Default 120000 (importing torch is slow). */
  startTimeoutMs?: number;
  /**
   * Default deadline of each call, in ms; a call's own `timeoutMs` wins. Default: none. Ops that report
   * progress (embed, rerank, evaluate, generate) apply it since the worker's last message, so a long
   * corpus still finishes while a stopped worker fails the call with `TimeoutError`. Training has none.
   */
  requestTimeoutMs?: number;
  /** Calls open at once; further calls wait in the client, in call order (their deadlines run). Default 128. */
  maxInFlight?: number;
  /** How long `close()` waits for a clean exit before SIGTERM, and again before SIGKILL, in ms. Default 5000. */
  shutdownTimeoutMs?: number;
  /** Restarting a crashed worker: at most `maxRestarts` times (default 3), waiting `backoffMs × 2^attempt` (default 500). */
  restart?: { maxRestarts?: number; backoffMs?: number };
  /** Where worker logs and SDK diagnostics go. Default: warnings and errors to `console.error`. */
  logger?: Logger | LogFunction;
  /** Train on several processes (and machines) with torch.distributed; see {@link DistributedOptions}. Default: one worker process. */
  distributed?: DistributedOptions;
  /** Called on worker crash and restart. */
  onLifecycle?: (event: LifecycleEvent) => void;
}
