/**
 * The SDK-started worker's socket folder: short and private, refused (not replaced by TCP) when the
 * path would be too long, and folders left by killed SDK processes cleaned at the next start.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerStartError } from '../../../ts/src/core/errors.js';
import { MAX_IPC_PATH, chooseEndpoint, removeStaleSocketDirs } from '../../../ts/src/internal/socket-dir.js';

const made: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sp-test-'));
  made.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A pid that surely names no running process: a child that has exited and been reaped. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

describe('chooseEndpoint', () => {
  it('makes a 0700 base and a 0700 worker folder holding the SDK pid', async () => {
    const base = join(scratch(), 'sp-1');
    const { endpoint, socketDir } = await chooseEndpoint('ipc', base);
    expect(endpoint).toBe(`ipc://${socketDir}/w.sock`);
    expect(statSync(base).mode & 0o777).toBe(0o700);
    expect(statSync(socketDir!).mode & 0o777).toBe(0o700);
    expect(Number.parseInt(readFileSync(join(socketDir!, 'pid'), 'utf8'), 10)).toBe(process.pid);
  });

  it('refuses a socket path too long for a Unix socket instead of falling back to tcp', async () => {
    const base = join(scratch(), 'x'.repeat(MAX_IPC_PATH));
    await expect(chooseEndpoint('ipc', base)).rejects.toThrow(WorkerStartError);
    await expect(chooseEndpoint('ipc', base)).rejects.toThrow(/Set TMPDIR to a shorter folder/);
  });

  it('refuses a base folder other users can enter', async () => {
    const base = join(scratch(), 'sp-open');
    mkdirSync(base, { mode: 0o755 });
    chmodSync(base, 0o755);
    await expect(chooseEndpoint('ipc', base)).rejects.toThrow(/mode 0700/);
  });

  it('gives tcp a fresh CURVE key pair per worker, for the worker on one stdin line', async () => {
    const a = await chooseEndpoint('tcp');
    const b = await chooseEndpoint('tcp');
    expect(a.endpoint).toBe('tcp://127.0.0.1:*');
    expect(a.curve!.serverPublicKey).toHaveLength(40);
    expect(a.curve!.clientSecretKey).not.toBe(b.curve!.clientSecretKey);
    const line = JSON.parse(a.curve!.stdinLine) as Record<string, string>;
    expect(Object.keys(line).sort()).toEqual(['client_public', 'server_secret']);
    expect(line['client_public']).toBe(a.curve!.clientPublicKey);
  });
});

describe('removeStaleSocketDirs', () => {
  it('removes only folders whose SDK process is dead', async () => {
    const base = scratch();
    const folder = (name: string, pid?: number) => {
      mkdirSync(join(base, name));
      if (pid !== undefined) writeFileSync(join(base, name, 'pid'), `${pid}\n`);
      return join(base, name);
    };
    const dead = folder('wdead', deadPid());
    const alive = folder('walive', process.pid);
    const young = folder('wyoung'); // no pid file yet: being made
    const other = folder('other', deadPid()); // not one of ours by name
    expect(removeStaleSocketDirs(base)).toBe(1);
    expect([existsSync(dead), existsSync(alive), existsSync(young), existsSync(other)]).toEqual([false, true, true, true]);
  });

  it('runs when a worker starts', async () => {
    const base = join(scratch(), 'sp-2');
    const first = await chooseEndpoint('ipc', base);
    writeFileSync(join(first.socketDir!, 'pid'), `${deadPid()}\n`); // as if its SDK process was killed
    const second = await chooseEndpoint('ipc', base);
    expect(existsSync(first.socketDir!)).toBe(false);
    expect(existsSync(second.socketDir!)).toBe(true);
  });
});
