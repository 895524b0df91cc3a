/**
 * A TrainingJob after its worker crashed (jobs/resume.ts), against a fake Rpc: it asks the restarted
 * worker what the job left (`run_inspect`), says so in a `restarted` event, and runs again from the
 * newest checkpoint on the saved rows; the real worker is killed in test/ts/integration/crash-resume.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, RemoteError, ValidationError, WorkerCrashedError } from '../../../ts/src/core/errors.js';
import type { TrainingEvent } from '../../../ts/src/jobs/events.js';
import { train } from '../../../ts/src/jobs/job.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';
import { FakeRpc, until } from './fake-rpc.js';

const runDir = mkdtempSync(join(tmpdir(), 'softprompt-resume-unit-'));
const rows = Array.from({ length: 8 }, (_, i) => ({ input: `q${i}`, target: 'a' }));
const spec = promptTuning({ model: { tiny: 'gpt2' }, data: { train: { rows }, evalFraction: 0.25 }, runDir });
const summary = { status: 'completed', steps: 8, total_steps: 8, final_loss: 1, metrics: {}, tokens: 9, epochs: 1, elapsed_s: 1, checkpoint: '/c8.pb' };
const saved = { train: `${runDir}/data/train.jsonl`, eval: `${runDir}/data/eval.jsonl`, train_rows: 6, eval_rows: 2 };
const crash = () => new WorkerCrashedError(null, 'SIGKILL', 'worker stderr');
const trains = (fake: FakeRpc) => fake.sent.filter((s) => s.op === 'train').map((s) => s.body);

/** A fake worker whose `run_inspect` answers `state`; each `data_open` gets a new dataset id. */
function worker(state: WireMap = { checkpoint: null, data: null, invalid: [] }): FakeRpc {
  let datasets = 0;
  return new FakeRpc((op): WireMap => (op === 'run_inspect' ? { run_dir: runDir, ...state } : op === 'data_open' ? { dataset: `ds-${++datasets}` } : {}));
}

async function collect(events: AsyncIterable<TrainingEvent>): Promise<TrainingEvent[]> {
  const out: TrainingEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('TrainingJob after a worker crash', () => {
  it('resumes from the newest verified checkpoint on the saved rows, without uploading again', async () => {
    const fake = worker({ checkpoint: { path: '/run/checkpoints/step-00000006.pb', step: 6 }, data: saved, invalid: [] });
    const job = train(fake.rpc, spec);
    const events = collect(job.events());
    await until(() => trains(fake).length === 1);
    fake.event({ event: 'checkpoint', step: 4, path: '/run/checkpoints/step-00000004.pb' });
    const cause = crash();
    fake.train!.controller.fail(cause); // the checkpoint at step 6 was written, its event never arrived
    await until(() => trains(fake).length === 2);
    const [first, second] = trains(fake);
    expect(fake.sent.find((s) => s.op === 'run_inspect')!.body).toEqual({ run_dir: runDir, job_id: first!['job_id'] });
    expect(first!['job_id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(second).toEqual({
      ...first,
      data: { train: { path: saved.train }, eval: { path: saved.eval }, on_bad_row: 'fail' },
      resume_from: '/run/checkpoints/step-00000006.pb',
    });
    expect(fake.ops().filter((o) => o === 'data_open')).toHaveLength(1); // the first upload only
    fake.event({ event: 'started', trainable_params: 1, trainable_fraction: 0.1, total_params: 10, device: 'cpu', dtype: 'f32', total_steps: 8, start_step: 6 });
    fake.reply({ status: 'completed', summary, checkpoint: '/c8.pb' });
    expect((await events).map((e) => e.type)).toEqual(['checkpoint', 'restarted', 'started']);
    expect((await events)[1]).toEqual({ type: 'restarted', attempt: 1, fromCheckpoint: '/run/checkpoints/step-00000006.pb', fromStep: 6, cause });
    await expect(job.result()).resolves.toMatchObject({ status: 'completed' });
  });

  it('keeps the checkpoint it saw when the worker reports none newer', async () => {
    const fake = worker({ checkpoint: null, data: { ...saved, eval_rows: 0 }, invalid: [] });
    const job = train(fake.rpc, spec);
    await until(() => trains(fake).length === 1);
    fake.event({ event: 'checkpoint', step: 4, path: '/run/c4.pb' });
    fake.train!.controller.fail(crash());
    await until(() => trains(fake).length === 2);
    expect(trains(fake)[1]).toMatchObject({ resume_from: '/run/c4.pb', data: { train: { path: saved.train }, on_bad_row: 'fail' } });
    expect(trains(fake)[1]!['data']).not.toHaveProperty('eval'); // no held-out rows: no eval source
    fake.reply({ status: 'completed', summary, checkpoint: '/c8.pb' });
    await job.result();
  });

  it('starts over on uploaded rows when the crash came before anything was saved', async () => {
    const fake = worker();
    const job = train(fake.rpc, spec);
    await until(() => trains(fake).length === 1);
    fake.train!.controller.fail(crash());
    await until(() => trains(fake).length === 2);
    const [first, second] = trains(fake);
    expect(second).not.toHaveProperty('resume_from');
    expect(second!['job_id']).toBe(first!['job_id']);
    expect(fake.ops().filter((o) => o === 'data_open')).toHaveLength(2); // uploaded again
    expect(second!['data']).not.toEqual(first!['data']); // into the new worker's dataset
    fake.reply({ status: 'completed', summary, checkpoint: '/c8.pb' });
    await job.result();
    await until(() => fake.ops().at(-1) === 'data_close');
  });

  it("starting over keeps the spec's own resumeFrom", async () => {
    const fake = worker();
    const resumed = promptTuning({ model: { tiny: 'gpt2' }, data: { train: { rows } }, runDir, resumeFrom: '/old/c.pb' });
    const job = train(fake.rpc, resumed);
    await until(() => trains(fake).length === 1);
    fake.train!.controller.fail(crash());
    await until(() => trains(fake).length === 2);
    expect(trains(fake)[1]).toMatchObject({ resume_from: '/old/c.pb' });
    fake.reply({ status: 'completed', summary, checkpoint: '/c8.pb' });
    await job.result();
  });

  it('fails with the crash after maxResumes resumes', async () => {
    const fake = worker({ checkpoint: { path: '/c2.pb', step: 2 }, data: saved, invalid: [] });
    const job = train(fake.rpc, spec, { maxResumes: 2 });
    const last = crash();
    for (let n = 1; n <= 3; n++) {
      await until(() => trains(fake).length === n);
      fake.train!.controller.fail(n === 3 ? last : crash());
    }
    await expect(job.result()).rejects.toBe(last);
    expect(trains(fake)).toHaveLength(3);

    const never = worker();
    const once = train(never.rpc, spec, { maxResumes: 0 });
    await until(() => trains(never).length === 1);
    never.train!.controller.fail(crash());
    await expect(once.result()).rejects.toBeInstanceOf(WorkerCrashedError);
    expect(never.ops()).not.toContain('run_inspect');
  });

  it('does not resume after an error the worker reported', async () => {
    const fake = worker();
    const job = train(fake.rpc, spec);
    await until(() => trains(fake).length === 1);
    fake.train!.controller.fail(new RemoteError('storage', 'checkpoint (step 4): cannot write', 'train'));
    await expect(job.result()).rejects.toMatchObject({ code: 'storage' });
    expect(fake.ops()).not.toContain('run_inspect');
  });

  it('a cancel while the worker restarts ends the job with an AbortError naming the last checkpoint', async () => {
    let release!: (v: WireMap) => void;
    const fake = new FakeRpc((op): WireMap | Promise<WireMap> =>
      op === 'run_inspect' ? new Promise<WireMap>((r) => (release = r)) : op === 'data_open' ? { dataset: 'ds-1' } : {},
    );
    const job = train(fake.rpc, spec);
    await until(() => trains(fake).length === 1);
    fake.event({ event: 'checkpoint', step: 4, path: '/run/c4.pb' });
    fake.train!.controller.fail(crash());
    await until(() => fake.ops().includes('run_inspect'));
    job.cancel();
    release({ run_dir: runDir, checkpoint: null, data: saved, invalid: [] });
    const error = await job.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortError);
    expect((error as Error).message).toContain('resumeFrom: "/run/c4.pb" (step 4)');
    expect(trains(fake)).toHaveLength(1);
  });

  it('refuses a bad maxResumes', () => {
    expect(() => train(new FakeRpc().rpc, spec, { maxResumes: -1 })).toThrow(ValidationError);
    expect(() => train(new FakeRpc().rpc, spec, { maxResumes: 1.5 })).toThrow('options.maxResumes: must be an integer');
  });
});
