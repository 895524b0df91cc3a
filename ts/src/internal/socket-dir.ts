/**
 * Where an SDK-started worker listens: an ipc socket in a short private folder, or loopback TCP with a
 * CURVE key pair made for that one worker.
 *
 * ipc: `<tmpdir>/sp-<uid>/` (0700, this user's, checked) holds one folder per worker, `wXXXXXX/`, with
 * the socket `w.sock` and `pid` (the SDK process that made it). A path too long for a Unix socket is
 * refused (WorkerStartError), never replaced by TCP. Folders whose SDK process is dead (killed before it
 * could clean up) are removed when the next worker starts.
 *
 * tcp: loopback is no access control, so the SDK makes a fresh CURVE server pair and client pair; the
 * worker gets them on stdin (`--curve-stdin`), never in argv or the environment, and admits only that
 * client key.
 */
import { lstatSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curveKeyPair } from 'zeromq';
import { WorkerStartError } from '../core/errors.js';

/** Longest path a Unix socket may have (sun_path is 108 bytes on Linux, 104 on macOS). */
export const MAX_IPC_PATH = 100;

/** CURVE keys of one SDK-started worker: what the client connects with, and the line the worker reads. */
export interface WorkerCurve {
  readonly serverPublicKey: string;
  readonly clientPublicKey: string;
  readonly clientSecretKey: string;
  /** `{"server_secret": ..., "client_public": ...}\n`, written to the worker's stdin. */
  readonly stdinLine: string;
}

export interface ChosenEndpoint {
  readonly endpoint: string;
  /** The private folder to remove when the worker exits (ipc). */
  readonly socketDir?: string;
  /** The keys (tcp). */
  readonly curve?: WorkerCurve;
}

/** The endpoint for a new worker; throws WorkerStartError when no safe one can be made. */
export async function chooseEndpoint(transport: 'ipc' | 'tcp', base: string = socketBase()): Promise<ChosenEndpoint> {
  if (transport === 'tcp') return { endpoint: 'tcp://127.0.0.1:*', curve: newWorkerCurve() };
  ensurePrivateBase(base);
  removeStaleSocketDirs(base);
  const dir = await mkdtemp(join(base, 'w')); // mkdtemp makes it 0700
  const path = join(dir, 'w.sock');
  if (path.length > MAX_IPC_PATH) {
    await rm(dir, { recursive: true, force: true });
    throw new WorkerStartError(
      `The worker's socket path ${path} is ${path.length} characters; a Unix socket allows ${MAX_IPC_PATH}. ` +
        `Set TMPDIR to a shorter folder (e.g. /tmp), or start with transport: 'tcp' (loopback with CURVE keys made for the worker).`,
    );
  }
  await writeFile(join(dir, 'pid'), `${process.pid}\n`, { mode: 0o600 });
  return { endpoint: `ipc://${path}`, socketDir: dir };
}

/** `<tmpdir>/sp-<uid>`: short, so the socket path fits. */
export function socketBase(): string {
  return join(tmpdir(), `sp-${process.getuid?.() ?? 'user'}`);
}

/** Makes `base` (0700) or checks that it is a real folder of this user that only it can enter. */
function ensurePrivateBase(base: string): void {
  try {
    mkdirSync(base, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new WorkerStartError(`Cannot make the worker's socket folder ${base}: ${(error as Error).message}`, { cause: error });
    }
  }
  const st = lstatSync(base);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new WorkerStartError(
      `The worker's socket folder ${base} must be a folder of this user with mode 0700 (it is ` +
        `${st.isDirectory() ? 'a folder' : 'not a folder'}, uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}): another user ` +
        `could reach the socket. Remove it, or set TMPDIR to a folder of your own.`,
    );
  }
}

/** Removes `base/w*` folders whose `pid` names a process that no longer runs (this user's only: base is 0700). */
export function removeStaleSocketDirs(base: string): number {
  let removed = 0;
  for (const name of safeReaddir(base)) {
    if (!name.startsWith('w')) continue;
    const dir = join(base, name);
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(join(dir, 'pid'), 'utf8'), 10);
    } catch {
      continue; // no pid file yet (being made) or not ours to judge
    }
    if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    rmSync(dir, { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/** A fresh CURVE server pair and client pair for one worker. */
export function newWorkerCurve(): WorkerCurve {
  const server = curveKeyPair();
  const client = curveKeyPair();
  return {
    serverPublicKey: server.publicKey,
    clientPublicKey: client.publicKey,
    clientSecretKey: client.secretKey,
    stdinLine: `${JSON.stringify({ server_secret: server.secretKey, client_public: client.publicKey })}\n`,
  };
}
