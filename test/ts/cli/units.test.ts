/** The CLI's pieces in process (no worker): arguments, exit codes, job files, --model, progress bar, JSONL, doctor's fixes. */
import { METHOD_NAMES } from '../../../ts/src/gen/schema/methods.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parse } from '../../../ts/src/cli/args.js';
import { torchInstall } from '../../../ts/src/cli/commands/doctor.js';
import { EXIT, UsageError, exitCodeFor } from '../../../ts/src/cli/exit-codes.js';
import { BUILDERS, buildJob, loadDocument } from '../../../ts/src/cli/job-file.js';
import { trainBody } from '../../../ts/src/jobs/spec.js';
import { readAll } from '../../../ts/src/cli/jsonl.js';
import { parseModel } from '../../../ts/src/cli/model-arg.js';
import { Output } from '../../../ts/src/cli/output.js';
import { ProgressBar, formatDuration } from '../../../ts/src/cli/progress.js';
import { AbortError, ValidationError, WorkerStartError } from '../../../ts/src/core/errors.js';
import type { StepEvent } from '../../../ts/src/jobs/events.js';

const dir = mkdtempSync(join(tmpdir(), 'softprompt-cli-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(tty = false): { out: Output; err: () => string; stdout: () => string } {
  let err = '';
  let std = '';
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => (std += d.toString()));
  Object.assign(stderr, { isTTY: tty });
  return { out: new Output(false, stdout, stderr), err: () => err, stdout: () => std };
}

describe('arguments', () => {
  const options = { steps: { type: 'string', help: 'steps' }, 'dry-run': { type: 'boolean', help: 'validate only' } } as const;

  it('parses options, positionals and the global ones', () => {
    const args = parse(['job.yaml', '--steps', '5', '--json', '--log-level', 'info'], options, [1, 1], 'train');
    expect(args.positionals).toEqual(['job.yaml']);
    expect(args.int('steps')).toBe(5);
    expect(args.bool('json')).toBe(true);
    expect(args.logLevel()).toBe('info');
  });

  it('names the flag in errors, which are usage errors (exit 2)', () => {
    expect(() => parse(['--nope'], options, [0, 1], 'train')).toThrow(UsageError);
    expect(() => parse([], options, [1, 1], 'train')).toThrow('missing argument');
    expect(() => parse(['a', 'b'], options, [1, 1], 'train')).toThrow("unexpected argument 'b'");
    expect(() => parse(['--steps', 'x'], options, [0, 0], 'train').int('steps')).toThrow("--steps: expected a number, got 'x'");
    expect(() => parse(['--steps', '1.5'], options, [0, 0], 'train').int('steps')).toThrow('--steps: expected an integer');
    expect(() => parse(['--log-level', 'loud'], options, [0, 0], 'train').logLevel()).toThrow('--log-level: expected one of');
  });
});

describe('exit codes', () => {
  it('map errors to the documented codes', () => {
    expect(exitCodeFor(new UsageError('x'))).toBe(EXIT.usage);
    expect(exitCodeFor(new ValidationError('x'))).toBe(EXIT.usage);
    expect(exitCodeFor(new WorkerStartError('x'))).toBe(EXIT.workerStart);
    expect(exitCodeFor(new AbortError())).toBe(EXIT.cancelled);
    expect(exitCodeFor(new Error('x'))).toBe(EXIT.failure);
    expect(EXIT).toEqual({ ok: 0, failure: 1, usage: 2, workerStart: 3, doesNotFit: 4, cancelled: 130 });
  });
});

describe('job files', () => {
  const base = { model: { tiny: 'gpt2' }, data: { train: { path: 'rows.jsonl' } }, runDir: 'run' };

  it('dispatch on method to the SDK builder of that name, for every method', () => {
    expect(Object.keys(BUILDERS).sort()).toEqual([...METHOD_NAMES].sort()); // every method of the worker's registry
    for (const method of Object.keys(BUILDERS)) {
      const spec = buildJob({ method, ...base }, join(dir, 'job.yaml'));
      expect(spec.method).toBe(method);
    }
  });

  it('resolve relative paths against the job file, and apply command-line overrides', () => {
    const spec = buildJob({ method: 'prompt_tuning', ...base, model: { nameOrPath: './models/m' } }, join(dir, 'sub', 'job.yaml'), { resumeFrom: '/abs/ck.pb' });
    expect(spec.data.train).toEqual({ path: join(dir, 'sub', 'rows.jsonl') });
    expect(spec.runDir).toBe(join(dir, 'sub', 'run'));
    expect(spec.resumeFrom).toBe('/abs/ck.pb');
    expect(spec.model).toEqual({ nameOrPath: join(dir, 'sub', 'models', 'm') });
    expect(buildJob({ method: 'prompt_tuning', ...base, model: { nameOrPath: 'gpt2' } }, 'job.yaml').model).toEqual({ nameOrPath: 'gpt2' });
  });

  it('give a job file without runDir a new runDir per run, beside the job file; --overwrite reaches the worker', () => {
    const { runDir: _, ...noRunDir } = base;
    const file = join(dir, 'sub', 'my job.yaml');
    const a = buildJob({ method: 'prompt_tuning', ...noRunDir }, file);
    const b = buildJob({ method: 'prompt_tuning', ...noRunDir }, file);
    expect(a.runDir).toMatch(new RegExp(`^${join(dir, 'sub', 'runs')}/my_job-\\d{8}T\\d{6}Z-[0-9a-f]{6}$`));
    expect(b.runDir).not.toBe(a.runDir);
    expect(a.overwrite).toBe(false);
    expect(trainBody(a, {})).not.toHaveProperty('overwrite');
    const over = buildJob({ method: 'prompt_tuning', ...base }, file, { overwrite: true });
    expect(over.overwrite).toBe(true);
    expect(trainBody(over, {})).toMatchObject({ overwrite: true, run_dir: join(dir, 'sub', 'run') });
    expect(() => buildJob({ method: 'prompt_tuning', ...base, overwrite: 'yes' }, file)).toThrow(/job\.overwrite/);
  });

  it('fail validation with the field path, like the builders', () => {
    expect(() => buildJob({ method: 'prompt_tuning', ...base, training: { lr: 0 } }, 'job.yaml')).toThrow('job.training.lr: must be > 0');
    expect(() => buildJob({ method: 'prefix_tuning', ...base, numVirtualTokenz: 3 }, 'job.yaml')).toThrow('job.numVirtualTokenz: unknown field');
    expect(() => buildJob({ method: 'lora', ...base }, 'job.yaml')).toThrow(/job\.method: expected 'prompt_tuning' \| .* got "lora"/);
    expect(() => buildJob([1], 'job.yaml')).toThrow('job: expected an object, got an array');
  });

  it('read JSON and YAML; a parse error is a usage error naming the file', async () => {
    writeFileSync(join(dir, 'a.yaml'), 'method: prompt_tuning\ntraining: { lr: 3e-2 }\n');
    writeFileSync(join(dir, 'b.json'), '{"method": ');
    expect(await loadDocument(join(dir, 'a.yaml'))).toEqual({ method: 'prompt_tuning', training: { lr: 0.03 } });
    await expect(loadDocument(join(dir, 'b.json'))).rejects.toThrow(`${join(dir, 'b.json')}: cannot parse`);
    await expect(loadDocument(join(dir, 'none.yaml'))).rejects.toThrow('no such file');
  });
});

describe('--model', () => {
  it('takes a hub id, tiny:<family>, a JSON spec or a relative path', () => {
    expect(parseModel('gpt2')).toEqual({ nameOrPath: 'gpt2' });
    expect(parseModel('tiny:llama')).toEqual({ tiny: 'llama' });
    expect(parseModel('{"tiny":"gpt2","seed":1}')).toEqual({ tiny: 'gpt2', seed: 1 });
    expect(parseModel('./m')).toEqual({ nameOrPath: join(process.cwd(), 'm') });
    expect(() => parseModel('{oops')).toThrow('--model: not valid JSON');
  });
});

describe('progress bar', () => {
  const step = (n: number): StepEvent => ({ type: 'step', step: n, loss: 2.5, lr: 0.03, gradNorm: 1, tokensPerS: 1234, memoryBytes: 1 });

  it('shows step/total, loss, lr, tokens/s and ETA', () => {
    let now = 0;
    const { out } = capture();
    const bar = new ProgressBar(out, { tty: false, columns: 120, now: () => now });
    bar.start(100, 0);
    now = 10_000; // 10 s for 10 steps: 90 s left
    expect(bar.format(step(10))).toBe('step 10/100 [###---------------------------]  10% | loss 2.5000 | lr 3.00e-2 | 1.2k tok/s | ETA 1:30');
    expect(formatDuration(3725)).toBe('1:02:05');
  });

  it('without a terminal prints a line every N steps and the last; on a terminal redraws in place above notes', () => {
    const plain = capture(false);
    const bar = new ProgressBar(plain.out, { tty: false, every: 5 });
    bar.start(12, 0);
    for (let i = 1; i <= 12; i++) bar.step(step(i));
    expect(plain.err().split('\n').filter(Boolean).map((l) => l.split(' ')[1])).toEqual(['5/12', '10/12', '12/12']);

    const tty = capture(true);
    const live = new ProgressBar(tty.out, { tty: true });
    live.start(12, 0);
    live.step(step(1));
    tty.out.note('checkpoint @ step 1');
    live.stop();
    expect(tty.err()).toMatch(/^\r\x1b\[Kstep 1\/12 .*\r\x1b\[Kcheckpoint @ step 1\n\r\x1b\[Kstep 1\/12 .*\r\x1b\[K$/s);
  });
});

describe('JSONL rows', () => {
  it('name file:line and the field of a bad row', async () => {
    const schema = z.object({ text: z.string() });
    const input = (text: string) => ({ stream: Readable.from([text]), name: 'in.jsonl' });
    expect(await readAll(input('{"text":"a"}\n\n{"text":"b"}\n'), schema)).toEqual([{ text: 'a' }, { text: 'b' }]);
    await expect(readAll(input('{"text":"a"}\n{"text":1}\n'), schema)).rejects.toThrow('in.jsonl:2: text: expected string, received number');
    await expect(readAll(input('{"text":\n'), schema)).rejects.toThrow('in.jsonl:1: not valid JSON');
  });
});

describe('doctor', () => {
  it('installs the CPU wheel without a GPU, else the newest CUDA wheel the driver supports', () => {
    expect(torchInstall('py', 'torch>=2.4', undefined)).toBe("py -m pip install 'torch>=2.4' --index-url https://download.pytorch.org/whl/cpu");
    expect(torchInstall('py', 'torch', '12.4')).toBe('py -m pip install torch --index-url https://download.pytorch.org/whl/cu124');
    expect(torchInstall('py', 'torch', '12.5')).toContain('/whl/cu124');
    expect(torchInstall('py', 'torch', '13.0', true)).toBe('py -m pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/cu128');
    expect(torchInstall('py', 'torch', '10.2')).toContain('https://pytorch.org/get-started/locally/');
  });
});
