/**
 * The report's pieces without a browser or a worker: reading run folders (resumed, failed, cut short,
 * empty), escaping, formatting, options, and the job hook that must never fail a job.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import type { Rpc } from '../../../ts/src/internal/rpc.js';
import { chartSpecs, lowerIsBetter } from '../../../ts/src/reports/charts.js';
import { esc, fmtBytes, fmtDuration, fmtNumber, jsonForScript } from '../../../ts/src/reports/html.js';
import { reportAfterJob } from '../../../ts/src/reports/job-report.js';
import { readRunDir } from '../../../ts/src/reports/run-data.js';
import { writeRunReport } from '../../../ts/src/reports/write.js';

const root = mkdtempSync(join(tmpdir(), 'softprompt-rundata-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const started = (startStep: number) => ({ event: 'started', trainable_params: 256, trainable_fraction: 0.002, total_params: 1e5, device: 'cpu', dtype: 'f32', total_steps: 4, start_step: startStep });
const step = (n: number, loss: number) => ({ event: 'step', step: n, loss, lr: 0.1, grad_norm: 1, tokens_per_s: 100, memory_bytes: 1 << 20 });
const summary = (status: string, finalLoss: number | null, steps = 4) => ({ status, steps, total_steps: 4, final_loss: finalLoss, metrics: {}, tokens: 40, epochs: 1, elapsed_s: 2, checkpoint: null });

let n = 0;
function runFolder(events: readonly object[] | undefined, extra = ''): string {
  const dir = join(root, `run-${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'job.json'), JSON.stringify({ method: 'prompt_tuning', model: { tiny: 'gpt2' }, task: 'generation' }));
  if (events) writeFileSync(join(dir, 'events.jsonl'), events.map((e, i) => JSON.stringify({ time: 1000 + i, ...e })).join('\n') + '\n' + extra);
  return dir;
}

describe('readRunDir', () => {
  it('keeps the latest value of a step logged twice by a resumed run, and counts the starts', async () => {
    const dir = runFolder([started(0), step(1, 3), step(2, 2.5), started(2), step(2, 2.4), step(3, 2), step(4, 1.5), { event: 'done', summary: summary('completed', 1.5) }]);
    const run = await readRunDir(dir);
    expect(run.starts.map((s) => s.startStep)).toEqual([0, 2]);
    expect(run.steps.map((s) => [s.step, s.loss])).toEqual([[1, 3], [2, 2.4], [3, 2], [4, 1.5]]);
    expect(run).toMatchObject({ status: 'completed', firstTime: 1000, lastTime: 1007, doneTime: 1007, unreadableLines: 0 });
  });

  it('reads a cancelled run with no logged step (final_loss null) as cancelled, loss NaN', async () => {
    const run = await readRunDir(runFolder([started(0), { event: 'done', summary: summary('cancelled', null, 0) }]));
    expect(run.status).toBe('cancelled');
    expect(run.summary!.finalLoss).toBeNaN();
  });

  it('marks a run with an error event failed, and one that just stops incomplete', async () => {
    const failed = await readRunDir(runFolder([started(0), step(1, 3), { event: 'error', code: 'invalid_argument', message: 'training diverged' }]));
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'invalid_argument', message: 'training diverged' } });
    expect((await readRunDir(runFolder([started(0), step(1, 3)]))).status).toBe('incomplete');
  });

  it('skips a line cut short and a malformed known event, ignores unknown kinds', async () => {
    const run = await readRunDir(runFolder([started(0), { event: 'step', step: 'one' }, { event: 'future_kind', x: 1 }, step(1, 3)], '{"event": "st'));
    expect(run.unreadableLines).toBe(2);
    expect(run.steps).toHaveLength(1);
  });

  it('takes the baseline from a baseline event, else from an eval at step 0 of a fresh run', async () => {
    const evals = [{ event: 'eval', step: 0, metrics: { loss: 5 } }, { event: 'eval', step: 4, metrics: { loss: 3 } }];
    expect((await readRunDir(runFolder([started(0), ...evals]))).baseline).toEqual({ loss: 5 });
    expect((await readRunDir(runFolder([started(0), { event: 'baseline', metrics: { loss: 6 } }, ...evals]))).baseline).toEqual({ loss: 6 });
    expect((await readRunDir(runFolder([started(2), ...evals.slice(1)]))).baseline).toBeUndefined();
  });

  it('gives a run without events.jsonl no events, and refuses a folder without job.json', async () => {
    expect(await readRunDir(runFolder(undefined))).toMatchObject({ status: 'incomplete', steps: [], starts: [], unreadableLines: 0 });
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await expect(readRunDir(empty)).rejects.toThrow(ValidationError);
    await expect(readRunDir(empty)).rejects.toThrow(/^runDir: ".*empty" has no job\.json: not a run folder$/);
  });
});

describe('writeRunReport', () => {
  it('writes report.html for a run with no events yet, and names bad options', async () => {
    const dir = runFolder(undefined);
    const path = await writeRunReport(dir);
    expect(path).toBe(join(dir, 'report.html'));
    expect(readFileSync(path, 'utf8')).toContain('No step or eval event was logged yet.');
    await expect(writeRunReport(dir, { outt: 'x' } as never)).rejects.toThrow('options.outt: unknown field');
    await expect(writeRunReport('')).rejects.toThrow(ValidationError);
  });

  it('writes to options.out with the given title', async () => {
    const out = join(root, 'elsewhere.html');
    expect(await writeRunReport(runFolder([started(0), step(1, 3)]), { out, title: 'A <b>title</b>' })).toBe(out);
    expect(readFileSync(out, 'utf8')).toContain('<h1>A &lt;b&gt;title&lt;/b&gt;<span class="badge incomplete">');
  });
});

describe('reportAfterJob (called by TrainingJob when a job ends)', () => {
  it('logs a failure as a warning and resolves undefined, even when the logger throws', async () => {
    const lines: string[] = [];
    const rpc = { capabilities: undefined, log: (level: string, message: string) => lines.push(`${level}: ${message}`) } as unknown as Rpc;
    expect(await reportAfterJob(rpc, join(root, 'missing'))).toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/^warn: could not write the run report in .*missing: runDir: .* has no job\.json/)]);
    const throwing = { capabilities: undefined, log: () => { throw new Error('logger down'); } } as unknown as Rpc;
    expect(await reportAfterJob(throwing, join(root, 'missing'))).toBeUndefined();
  });
});

describe('escaping and formatting', () => {
  it('jsonForScript cannot close its script element and parses back unchanged', () => {
    const value = { s: '</script><!-- & \u2028 \u2029 <b>', n: 1.5, nan: Number.NaN };
    const text = jsonForScript(value);
    expect(text).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(text)).toEqual({ ...value, nan: null });
  });

  it('esc escapes the five HTML specials', () => {
    expect(esc(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });

  it('formats numbers, bytes and durations', () => {
    expect([fmtNumber(5.62437), fmtNumber(0.0000123), fmtNumber(8), fmtNumber(Number.NaN), fmtNumber(null)]).toEqual(['5.624', '1.23e-5', '8', '—', '—']);
    expect([fmtBytes(512), fmtBytes(1.5 * 1024 ** 3)]).toEqual(['512 B', '1.5 GiB']);
    expect([fmtDuration(0.0812), fmtDuration(12.34), fmtDuration(245), fmtDuration(7380)]).toEqual(['81 ms', '12.3 s', '4 min 05 s', '2 h 03 min']);
  });

  it('knows which metrics improve downwards', () => {
    expect(['loss', 'eval_loss', 'perplexity'].every(lowerIsBetter)).toBe(true);
    expect(['accuracy', 'token_accuracy', 'ndcg@10', 'mrr'].some(lowerIsBetter)).toBe(false);
  });

  it('charts only what the run has: no step events, no loss/lr/grad/throughput charts', async () => {
    const run = await readRunDir(runFolder([started(0), { event: 'eval', step: 4, metrics: { accuracy: 0.5 } }]));
    expect(chartSpecs(run).map((c) => c.id)).toEqual(['metrics']);
  });
});
