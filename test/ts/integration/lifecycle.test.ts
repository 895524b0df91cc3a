/**
 * Worker lifecycle: kill -9 mid-request, restart with backoff, the restart limit, close, and start
 * failures (missing Python, missing packages, crash or hang on start, protocol mismatch) using fake
 * workers from fixtures/.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startSoftprompt } from '../../../ts/src/client.js';
import { ClientClosedError, WorkerCrashedError, WorkerStartError } from '../../../ts/src/core/errors.js';
import { toLogFunction } from '../../../ts/src/core/logger.js';
import type { LifecycleEvent, StartOptions } from '../../../ts/src/core/start-options.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';
import { Rpc } from '../../../ts/src/internal/rpc.js';
import { Supervisor } from '../../../ts/src/internal/supervisor.js';
import { fixtures, quietLogger, testWorkerOptions, venvPython } from '../helpers.js';

const fake = (mode: string) => ({ workerCommand: [venvPython, join(fixtures, 'fake_worker.py'), mode] });

async function supervised(options: StartOptions) {
  const resolved = parseStartOptions(options);
  const supervisor = await Supervisor.start(resolved, {}, toLogFunction(resolved.logger));
  return { supervisor, rpc: new Rpc(supervisor, undefined) };
}

describe('crash and restart (real worker, tcp transport)', () => {
  it('kill -9 mid-request: WorkerCrashedError, then a restart, and the next call works', async () => {
    const events: LifecycleEvent[] = [];
    const { supervisor, rpc } = await supervised(
      testWorkerOptions({ transport: 'tcp', restart: { maxRestarts: 1, backoffMs: 50 }, onLifecycle: (e) => events.push(e) }),
    );
    try {
      const firstPid = supervisor.current!.hello.pid;
      const call = rpc.request('test_sleep', { s: 30 });
      await rpc.request('ping', {}); // the sleep has reached the worker
      process.kill(firstPid, 'SIGKILL');
      const err = await call.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkerCrashedError);
      expect(err).toMatchObject({ signal: 'SIGKILL', exitCode: null, code: 'worker_crashed' });

      await expect(rpc.request('ping', {})).resolves.toBeDefined();
      expect(supervisor.current!.hello.pid).not.toBe(firstPid);
      expect(events.map((e) => e.type)).toEqual(['crash', 'restart']);

      // The limit (1 restart) is used up: the next crash is final.
      process.kill(supervisor.current!.hello.pid, 'SIGKILL');
      await expect(supervisor.current!.process.exited).resolves.toMatchObject({ signal: 'SIGKILL' });
      await expect(rpc.request('ping', {})).rejects.toThrow(/restarts \(options.restart.maxRestarts\)/);
    } finally {
      await supervisor.close();
    }
  });
});

describe('close', () => {
  it('fails open calls with ClientClosedError and exits the worker cleanly', async () => {
    const { supervisor, rpc } = await supervised(testWorkerOptions());
    const proc = supervisor.current!.process;
    const call = rpc.request('test_sleep', { s: 30 }).catch((e: unknown) => e);
    await supervisor.close();
    await expect(call).resolves.toBeInstanceOf(ClientClosedError);
    expect(proc.exitInfo).toEqual({ exitCode: 0, signal: null });
    await expect(rpc.request('ping', {})).rejects.toBeInstanceOf(ClientClosedError);
  });
});

describe('start failures', () => {
  const start = (options: StartOptions, hooks = {}) => startSoftprompt({ logger: quietLogger(), ...options }, hooks);

  it('a missing Python names the path and the fix', async () => {
    const err = await start({ python: '/nonexistent/bin/python3' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('"/nonexistent/bin/python3" (from options.python) was not found');
    expect((err as Error).message).toContain('make setup');
    expect((err as Error).message).toContain('SOFTPROMPT_PYTHON');
  });

  it('a worker crashing on start shows its stderr', async () => {
    const err = await start({}, fake('crash')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('exited with code 3 before it was ready');
    expect((err as WorkerStartError).stderrTail).toContain('fake worker crashed on start');
  });

  it('a missing package names it and the fix', async () => {
    const err = await start({}, fake('missing-module')).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/lacks the package 'torch'.*make setup/s);
  });

  it('a worker that never becomes ready times out', async () => {
    const err = await start({ startTimeoutMs: 1500 }, fake('hang')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('did not become ready within 1500 ms (options.startTimeoutMs)');
  });

  it('a protocol version mismatch says to install matching versions', async () => {
    const err = await start({}, fake('wrong-protocol')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('The worker speaks protocol 2, this SDK (softprompt-ts/0.1.0) speaks 1');
    expect((err as Error).cause).toMatchObject({ code: 'protocol_version_mismatch' });
  });

  it('a worker without torch is refused with the install hint', async () => {
    const err = await start({}, fake('no-torch')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toMatch(/lacks torch, transformers, peft\. pip install torch transformers peft\. Run `npx softprompt setup`/);
  });

  it('an invalid option is a ValidationError naming it, before anything starts', async () => {
    await expect(start({ transport: 'udp' as 'ipc' })).rejects.toThrow(/^options.transport:/);
  });
});
