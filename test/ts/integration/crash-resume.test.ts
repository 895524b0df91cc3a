/**
 * Crashes lose nothing (issue 8), against the real worker on a tiny GPT-2:
 *
 * - 20 trials kill -9 the worker at a moment a seeded RNG picks (at the `data` or `started` event,
 *   after a random step event plus a random delay, or halfway through writing a checkpoint, slowed
 *   down by fixtures/fault_ops.py); each job resumes by itself and ends with exactly the final loss and eval metrics of an
 *   uninterrupted run (tolerance 0: on the CPU, with one thread, the resumed trajectory is bit for bit
 *   the same), and every checkpoint on disk verifies its hash; no temp file is left.
 * - An out-of-memory in a training step is a typed `out_of_memory` error with advice, and the same
 *   worker goes on serving a loaded prompt.
 * - A disk that refuses a checkpoint (a real EFBIG from a file-size limit) is a typed `storage` error
 *   naming the file; the previous checkpoint stays intact and resumes to the same end.
 *
 * One supervisor. Its worker starts from a fork server that has imported torch and transformers
 * (fixtures/prewarmed_worker.py): a `python -m softprompt_worker` restart costs ~3.5 s of CPU in
 * imports, which made 20 trials ~80 s of CPU; forked, a restart costs ~0.2 s. The forked child runs
 * the real worker (`softprompt_worker.__main__.main`) and the kill -9 hits it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteError, WorkerCrashedError } from '../../../ts/src/core/errors.js';
import { toLogFunction } from '../../../ts/src/core/logger.js';
import { generate } from '../../../ts/src/inference/generate.js';
import { Prompts } from '../../../ts/src/inference/prompts.js';
import { parseStartOptions } from '../../../ts/src/internal/options.js';
import { workerPythonPath } from '../../../ts/src/internal/python.js';
import { Rpc } from '../../../ts/src/internal/rpc.js';
import { Supervisor } from '../../../ts/src/internal/supervisor.js';
import { Checkpoints } from '../../../ts/src/jobs/checkpoints.js';
import type { RestartedEvent, TrainingEvent, TrainingResult } from '../../../ts/src/jobs/events.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { type TrainOptions, train } from '../../../ts/src/jobs/job.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import type { JobSpec } from '../../../ts/src/jobs/spec.js';
import { fixtures, quietLogger, venvPython } from '../helpers.js';

const TRIALS = 20;
const STEPS = 24;
const CHECKPOINT_EVERY = 4;
const model: TinyModelSpec = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy', 'leaf', 'rain', 'sky', 'owl', 'fig', 'jar', 'map', 'pen'];
const ROWS = WORDS.map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));

/** mulberry32: a small seeded RNG, so every run of this file kills at the same moments. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where a trial kills the worker. */
type Moment =
  | { readonly at: 'data' | 'started' }
  | { readonly at: 'step'; readonly step: number; readonly delayMs: number }
  | { readonly at: 'checkpoint-write'; readonly step: number };

function moments(n: number, seed: number): Moment[] {
  const random = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  return Array.from({ length: n }, (_, i): Moment => {
    if (i === 0) return { at: 'data' }; // before any checkpoint: the job starts over on the saved rows
    if (i === 1) return { at: 'started' };
    if (i % 4 === 2) return { at: 'checkpoint-write', step: CHECKPOINT_EVERY * int(1, STEPS / CHECKPOINT_EVERY - 1) };
    return { at: 'step', step: int(1, STEPS - 6), delayMs: int(0, 15) };
  });
}

const tmpFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('crashes lose nothing', () => {
  // The client's parts over one supervisor + Rpc (the fault_* test ops are not on the public client).
  let forkServer: ChildProcess | undefined;
  let supervisor: Supervisor;
  let rpc: Rpc;
  let dir: string;
  const sp = {
    train: (s: JobSpec, options?: TrainOptions) => train(rpc, s, options),
    get checkpoints() {
      return new Checkpoints(rpc);
    },
    get prompts() {
      return new Prompts(rpc);
    },
    generate: (input: Parameters<typeof generate>[1]) => generate(rpc, input),
    rpcForTests: (op: string, body: Record<string, number>) => rpc.request(op, body),
    get workerPid() {
      return supervisor.current?.hello.pid;
    },
  };
  let reference: TrainingResult;
  const specInput = (runDir: string) => ({
    model,
    numVirtualTokens: 4 as number | undefined,
    data: { train: { rows: ROWS }, evalFraction: 0.25 }, // uploaded from TS: a resume must not need them again
    training: { steps: STEPS, batchSize: 4, logEvery: 1, lr: 0.1, checkpointEvery: CHECKPOINT_EVERY, seed: 7 },
    runDir: join(dir, runDir),
  });
  const spec = (runDir: string) => promptTuning(specInput(runDir));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-crash-'));
    const env = { OMP_NUM_THREADS: '1', SOFTPROMPT_EXTRA_OP_MODULES: 'fault_ops', PYTHONPATH: `${workerPythonPath()}:${fixtures}` };
    const socket = join(dir, 'fork-server.sock');
    const server = spawn(venvPython, [join(fixtures, 'prewarmed_worker.py'), 'serve', socket], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    forkServer = server;
    const [ready] = (await once(server.stdout!, 'data')) as [Buffer];
    expect(ready.toString().trim()).toBe('ready');
    const options = parseStartOptions({ logger: quietLogger(), env, restart: { maxRestarts: 1000, backoffMs: 0 } });
    const workerCommand = [venvPython, join(fixtures, 'prewarmed_worker.py'), 'run', socket];
    supervisor = await Supervisor.start(options, { workerCommand }, toLogFunction(options.logger));
    rpc = new Rpc(supervisor, undefined);
    reference = await sp.train(spec('reference')).result();
  });
  afterAll(async () => {
    await supervisor?.close();
    forkServer?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`resumes after kill -9 at ${TRIALS} random moments with the uninterrupted run's final loss, no checkpoint corrupt`, async () => {
    expect(reference.summary).toMatchObject({ status: 'completed', steps: STEPS });
    const recoveryMs: number[] = []; // kill → the restarted worker said where to resume (restart + run_inspect)
    const started = performance.now();
    for (const [trial, moment] of moments(TRIALS, 20250811).entries()) {
      const runDir = join(dir, `trial-${trial}`);
      const checkpoints = join(runDir, 'checkpoints');
      let killedAt = -1;
      let killTime = 0;
      let seenCheckpoint = 0; // the last checkpoint event before the kill
      let tmpAtKill: string[] = [];
      const kill = (step: number) => {
        if (killedAt >= 0) return;
        killedAt = step;
        killTime = performance.now();
        process.kill(sp.workerPid!, 'SIGKILL');
        tmpAtKill = existsSync(checkpoints) ? tmpFiles(checkpoints) : [];
      };
      if (moment.at === 'checkpoint-write') await sp.rpcForTests('fault_slow_temp_write', { seconds: 0.3 });
      const job = sp.train(spec(`trial-${trial}`), { maxResumes: 1 });
      let watcher: NodeJS.Timeout | undefined;
      let lastStep = 0;
      const events: TrainingEvent[] = [];
      for await (const e of job) {
        events.push(e);
        if (e.type === 'restarted') recoveryMs.push(performance.now() - killTime);
        if (killedAt >= 0) continue;
        if (e.type === 'step') lastStep = e.step;
        if (e.type === 'checkpoint') seenCheckpoint = e.step;
        if (e.type === moment.at) kill(0);
        if (moment.at === 'step' && e.type === 'step' && e.step === moment.step) setTimeout(() => kill(lastStep), moment.delayMs);
        if (moment.at === 'checkpoint-write' && e.type === 'started' && !watcher) {
          const prefix = `.step-${String(moment.step).padStart(8, '0')}.pb.`;
          watcher = setInterval(() => {
            const writing = existsSync(checkpoints) ? tmpFiles(checkpoints).find((f) => f.startsWith(prefix)) : undefined;
            if (writing !== undefined && statSync(join(checkpoints, writing), { throwIfNoEntry: false })?.size) {
              clearInterval(watcher);
              kill(moment.step);
            }
          }, 2);
        }
      }
      clearInterval(watcher);
      const result = await job.result();
      const label = `trial ${trial} (${JSON.stringify(moment)})`;

      // It crashed once, resumed from a checkpoint no later than the kill, and went on from there.
      const restarted = events.filter((e): e is RestartedEvent => e.type === 'restarted');
      expect(restarted, label).toHaveLength(1);
      const { fromStep, fromCheckpoint, cause } = restarted[0]!;
      expect(cause).toBeInstanceOf(WorkerCrashedError);
      expect(cause.signal).toBe('SIGKILL');
      if (moment.at === 'data' || moment.at === 'started') expect(fromCheckpoint, label).toBeNull();
      if (moment.at === 'checkpoint-write') {
        // Killed halfway through the write (half the bytes in its temp file): the resume comes from the
        // checkpoint before, and no partial file ever had the final name (every .pb verifies below).
        expect(tmpAtKill, label).toHaveLength(1);
        expect(fromStep, label).toBe(moment.step - CHECKPOINT_EVERY);
      }
      expect(fromStep, label).toBeGreaterThanOrEqual(seenCheckpoint);
      expect(fromStep % CHECKPOINT_EVERY, label).toBe(0);
      if (fromCheckpoint !== null) expect(fromCheckpoint).toBe(join(checkpoints, `step-${String(fromStep).padStart(8, '0')}.pb`));
      const after = events.slice(events.indexOf(restarted[0]!) + 1);
      expect(after.map((e) => e.type).slice(0, 2), label).toEqual(['data', 'started']);
      expect(after[0]).toMatchObject({ trainRows: 12, evalRows: 4 }); // the saved rows: same rows, same split
      expect(after[1]).toMatchObject({ startStep: fromStep });
      expect(after.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? e.step : 0))).toEqual(
        Array.from({ length: STEPS - fromStep }, (_, i) => fromStep + 1 + i),
      );

      // The same end as the uninterrupted run, to the bit.
      expect(result.summary.finalLoss, label).toBe(reference.summary.finalLoss);
      expect(result.summary.metrics, label).toEqual(reference.summary.metrics);
      expect(result.summary.steps).toBe(STEPS);

      // Every checkpoint on disk verifies; no temp file is left.
      const files = readdirSync(checkpoints);
      expect(tmpFiles(checkpoints), label).toEqual([]);
      for (const f of files) {
        const info = await sp.checkpoints.inspect(join(checkpoints, f));
        if (f === 'best.pb') expect(info.step, label).toBe(result.best!.step); // model selection's pick
        else expect(info.step, label).toBe(Number(f.slice(5, 13)));
      }
      expect(files).toContain(`step-${String(STEPS).padStart(8, '0')}.pb`);
    }
    console.info(
      `crash-resume: ${TRIALS} trials in ${((performance.now() - started) / 1000).toFixed(1)} s; kill → restarted worker ` +
        `answered run_inspect: median ${median(recoveryMs).toFixed(0)} ms, max ${Math.max(...recoveryMs).toFixed(0)} ms`,
    );
  }, 900_000); // ~70 s of CPU; a generous wall limit for shared, loaded machines

  it('a worker that crashes more often than maxResumes fails the job with WorkerCrashedError', async () => {
    const job = sp.train(spec('no-resume'), { maxResumes: 0 });
    const types: string[] = [];
    const loop = (async () => {
      for await (const e of job.events()) {
        types.push(e.type);
        if (e.type === 'started') process.kill(sp.workerPid!, 'SIGKILL');
      }
    })();
    await expect(loop).rejects.toBeInstanceOf(WorkerCrashedError);
    await expect(job.result()).rejects.toMatchObject({ signal: 'SIGKILL' });
    expect(types).not.toContain('restarted');
  });

  it('out of memory in a training step is a typed error with advice; the worker goes on serving a loaded prompt', async () => {
    await sp.prompts.load('reference', reference.checkpoint, { model });
    const before = await sp.generate({ prompt: 'reference', inputs: ['kite='], maxNewTokens: 4 }).result();
    const pid = sp.workerPid;
    await sp.rpcForTests('fault_oom_at_step', { step: 3 });
    const error = await sp.train(spec('oom')).result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: 'out_of_memory', details: { batch_size: 4, grad_accumulation: 1 } });
    expect((error as RemoteError).message).toMatch(/training\.batchSize \(now 4, try 2\).*training\.gradAccumulation/); // the SDK's names
    expect(sp.workerPid).toBe(pid); // not restarted
    const after = await sp.generate({ prompt: 'reference', inputs: ['kite='], maxNewTokens: 4 }).result();
    expect(after.outputs).toEqual(before.outputs);
    expect((await sp.train(spec('after-oom')).result()).summary.finalLoss).toBe(reference.summary.finalLoss);
  });

  it('a full disk fails the checkpoint write with a storage error; the previous checkpoint stays intact and resumable', async () => {
    // A real refusal by the kernel: past the first checkpoint the worker may not grow a file beyond
    // 8000 bytes (RLIMIT_FSIZE → EFBIG); a checkpoint here is ~9.5 kB, the event log stays smaller.
    const runDir = join(dir, 'full-disk');
    const checkpoints = join(runDir, 'checkpoints');
    await sp.rpcForTests('fault_file_size_limit', { after_checkpoints: 1, bytes: 8000 });
    const job = sp.train(spec('full-disk'));
    const events: TrainingEvent[] = [];
    const error = await (async () => {
      for await (const e of job) events.push(e);
    })().catch((e: unknown) => e);
    await sp.rpcForTests('fault_reset', {});
    const previous = join(checkpoints, 'step-00000004.pb');
    const failed = join(checkpoints, 'step-00000008.pb');
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: 'storage', details: { errno: 'EFBIG', path: failed, previous_checkpoint: previous } });
    expect((error as Error).message).toContain(`checkpoint (step 8): cannot write '${failed}': File too large (EFBIG)`);
    expect((error as Error).message).toContain(`the previous checkpoint '${previous}' is intact`);
    expect(events.filter((e) => e.type === 'checkpoint').map((e) => (e.type === 'checkpoint' ? e.step : 0))).toEqual([4]);
    expect(readdirSync(checkpoints).filter((f) => f !== 'best.pb')).toEqual(['step-00000004.pb']); // no temp file, no partial step 8
    const log = readFileSync(join(runDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.at(-1)).toMatchObject({ event: 'error', code: 'storage' });
    expect(await sp.checkpoints.inspect(previous)).toMatchObject({ step: 4, resumable: true });
    const resumed = await sp.train(promptTuning({ ...specInput('full-disk-resumed'), numVirtualTokens: undefined, resumeFrom: previous })).result();
    expect(resumed.summary.finalLoss).toBe(reference.summary.finalLoss);
  });
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : Number.NaN;
}
