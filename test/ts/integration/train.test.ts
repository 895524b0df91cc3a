/**
 * Training jobs against the real worker on a tiny GPT-2 (random weights at std 0.1, so the output
 * depends on the prompt; see test/python/test_method_matrix.py): rows uploaded in chunks, a JSONL
 * file, streamed events, generation with the trained prompt, cancel → resumable checkpoint → resume,
 * inspect, PEFT export/import, a bad row reported by file:line; P-tuning; suffix tuning (embedding) and passage
 * tuning (reranking) end to end. One worker serves the file (~15 s wall, mostly the worker's start).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Softprompt } from '../../../ts/src/client.js';
import { RemoteError } from '../../../ts/src/core/errors.js';
import type { TrainingEvent, TrainingResult } from '../../../ts/src/jobs/events.js';
import type { TinyModelSpec } from '../../../ts/src/spec/model-spec.js';
import { type PromptTuningJob, promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { passageTuning } from '../../../ts/src/jobs/passage-tuning.js';
import { pTuning } from '../../../ts/src/jobs/p-tuning.js';
import { prefixTuning } from '../../../ts/src/jobs/prefix-tuning.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';
import { testWorkerOptions } from '../helpers.js';

const model: TinyModelSpec = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy'];
const ROWS = WORDS.map((w) => ({ input: `${w}=`, target: [...w].reverse().join('') }));

describe('training jobs with the real worker', () => {
  let sp: Softprompt;
  let dir: string;
  let cancelled: TrainingResult;
  let trained: TrainingResult;
  const job = (over: Partial<PromptTuningJob>): PromptTuningJob => ({
    model,
    numVirtualTokens: 4,
    data: { train: { rows: ROWS } },
    training: { steps: 4, batchSize: 4, logEvery: 1, lr: 0.1, schedule: 'constant' },
    runDir: join(dir, 'run'),
    ...over,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-train-'));
    sp = await Softprompt.start(testWorkerOptions({ env: { OMP_NUM_THREADS: '1' } }));
  });
  afterAll(async () => {
    await sp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains prompt tuning from rows uploaded in chunks, streaming events in order while the loss falls', async () => {
    const many = Array.from({ length: 64 }, (_, i) => ROWS[i % ROWS.length]!);
    const spec = promptTuning(job({
      data: { train: { rows: many }, evalFraction: 0.25 },
      training: { steps: 12, batchSize: 8, logEvery: 3, lr: 0.1, schedule: 'constant', checkpointEvery: 6 },
      runDir: join(dir, 'rows'),
    }));
    const training = sp.train(spec, { uploadChunkBytes: 256 }); // ~8 rows per data_append
    const events: TrainingEvent[] = [];
    for await (const e of training.events()) events.push(e);
    const result = await training.result();
    trained = result;

    // The step-0 eval is the untuned baseline (training.evalBaseline, on by default).
    expect(events.map((e) => e.type).filter((t) => t !== 'best')).toEqual(['data', 'started', 'eval', 'step', 'step', 'checkpoint', 'step', 'step', 'eval', 'checkpoint', 'selection', 'done']);
    const bests = events.flatMap((e) => (e.type === 'best' ? [e] : []));
    expect(bests[0]).toMatchObject({ step: 0, metric: 'loss', checkpoint: join(dir, 'rows', 'checkpoints', 'best.pb') }); // the untuned prompt is a candidate
    expect(result.best).toMatchObject({ step: bests.at(-1)!.step, value: bests.at(-1)!.value, checkpoint: join(dir, 'rows', 'checkpoints', 'best.pb') });
    expect(events[0]).toMatchObject({ type: 'data', trainRows: 48, evalRows: 16, skipped: 0 });
    expect(events[1]).toMatchObject({ type: 'started', trainableParams: 4 * 64, device: 'cpu', totalSteps: 12, startStep: 0 });
    const losses = events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    const step = events.find((e) => e.type === 'step')!;
    expect(step).toMatchObject({ lr: 0.1 });
    expect(step.type === 'step' && step.gradNorm > 0 && step.tokensPerS > 0 && step.memoryBytes > 0).toBe(true);
    const baseline = events.find((e) => e.type === 'eval');
    expect(baseline).toMatchObject({ step: 0, metrics: { loss: expect.any(Number) } });
    expect(result.summary.baselineMetrics).toEqual(baseline?.type === 'eval' ? baseline.metrics : undefined);
    expect(events.filter((e) => e.type === 'eval').at(-1)).toMatchObject({ step: 12, metrics: { loss: expect.any(Number), token_accuracy: expect.any(Number) } });
    expect(result).toMatchObject({ status: 'completed', summary: { steps: 12, totalSteps: 12, status: 'completed' } });
    expect(result.checkpoint).toBe(join(dir, 'rows', 'checkpoints', 'step-00000012.pb'));
    expect(existsSync(join(dir, 'rows', 'events.jsonl'))).toBe(true);
  });

  it('prompts.load(name, result) loads the best evaluation\'s prompt; a path loads that file', async () => {
    const best = await sp.prompts.load('best', trained, { model });
    expect(best).toMatchObject({ name: 'best', method: 'prompt_tuning', step: trained.best!.step });
    await sp.prompts.unload('best');
    const unselected = { checkpoint: trained.checkpoint, best: null };
    expect(await sp.prompts.load('last', unselected, { model })).toMatchObject({ step: 12 }); // selection off: the last step
    await sp.prompts.unload('last');
  });

  it('generates with the trained checkpoint loaded as a prompt', async () => {
    const info = await sp.prompts.load('trained', trained.checkpoint, { model });
    expect(info).toMatchObject({ name: 'trained', method: 'prompt_tuning', step: 12 });
    const stream = sp.generate({ prompt: 'trained', inputs: ['kite=', 'moon='], maxNewTokens: 4 });
    const deltas: string[] = [];
    for await (const d of stream) if (d.row === 0) deltas.push(d.text);
    const { outputs } = await stream.result();
    expect(outputs).toHaveLength(2);
    expect(deltas.join('')).toBe(outputs[0]);
    const again = await sp.generate({ prompt: 'trained', inputs: ['kite=', 'moon='], maxNewTokens: 4 }).result();
    expect(again.outputs).toEqual(outputs); // greedy: deterministic
    await sp.prompts.unload('trained');
  });

  it('trains from a JSONL file and inspects the checkpoint', async () => {
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const result = await sp.train(promptTuning(job({ data: { train: { path: file } }, runDir: join(dir, 'file') }))).result();
    expect(result.status).toBe('completed');
    const info = await sp.checkpoints.inspect(result.checkpoint, { model });
    expect(info).toMatchObject({
      path: result.checkpoint,
      method: 'prompt_tuning',
      methodConfig: { numVirtualTokens: 4, init: 'vocab' },
      baseModel: { modelType: 'gpt2' },
      step: 4,
      resumable: true,
      compatible: true,
      tensors: { embedding: { dtype: 'float32', shape: [4, 64] } },
    });
    expect(info.contentSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('cancel() stops mid-run with status cancelled and a resumable checkpoint', async () => {
    const training = sp.train(promptTuning(job({ training: { steps: 5000, batchSize: 4, logEvery: 1, lr: 0.1 }, runDir: join(dir, 'cancel') })));
    for await (const e of training.events()) if (e.type === 'step' && e.step >= 2) training.cancel();
    cancelled = await training.result();
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.summary.steps).toBeGreaterThanOrEqual(2);
    expect(cancelled.summary.steps).toBeLessThan(5000);
    expect(existsSync(cancelled.checkpoint)).toBe(true);
    const info = await sp.checkpoints.inspect(cancelled.checkpoint);
    expect(info).toMatchObject({ step: cancelled.summary.steps, resumable: true });
  });

  it('resumes the cancelled run from its checkpoint to completion', async () => {
    const steps = cancelled.summary.steps + 3;
    const spec = promptTuning({ ...job({ training: { steps, batchSize: 4, logEvery: 1, lr: 0.1 }, runDir: join(dir, 'resumed') }), numVirtualTokens: undefined, resumeFrom: cancelled.checkpoint });
    const training = sp.train(spec);
    const events: TrainingEvent[] = [];
    for await (const e of training) events.push(e);
    expect(events.find((e) => e.type === 'started')).toMatchObject({ startStep: cancelled.summary.steps, totalSteps: steps });
    expect((await training.result()).summary).toMatchObject({ status: 'completed', steps });
  });

  it('an AbortSignal cancels like cancel()', async () => {
    const controller = new AbortController();
    const training = sp.train(promptTuning(job({ training: { steps: 5000, batchSize: 4, logEvery: 1 }, runDir: join(dir, 'abort') })), { signal: controller.signal });
    for await (const e of training.events()) if (e.type === 'step') controller.abort();
    expect((await training.result()).status).toBe('cancelled');
  });

  it('reports a bad JSONL row by file:line as a typed error', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, `${JSON.stringify(ROWS[0])}\n{"input": "x", "target": 3}\n`);
    const failing = sp.train(promptTuning(job({ data: { train: { path: file } }, runDir: join(dir, 'bad') })));
    const error = await failing.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: 'invalid_argument' });
    expect((error as Error).message).toContain(`${file}:2: target`);
    // onBadRow 'skip' goes on and reports the line in the data event
    const skipping = sp.train(promptTuning(job({ data: { train: { path: file }, onBadRow: 'skip' }, runDir: join(dir, 'skip'), training: { steps: 1 } })));
    const events: TrainingEvent[] = [];
    for await (const e of skipping) events.push(e);
    expect(events[0]).toMatchObject({ type: 'data', trainRows: 1, skipped: 1, skippedRows: [{ where: `${file}:2` }] });
  });

  it('trains prefix tuning and round-trips it through a PEFT adapter', async () => {
    const spec = prefixTuning({ model, numVirtualTokens: 3, data: { train: { rows: ROWS } }, training: { steps: 2, batchSize: 4 }, runDir: join(dir, 'prefix') });
    const result = await sp.train(spec).result();
    expect(result.status).toBe('completed');
    const exported = await sp.checkpoints.exportPeft(result.checkpoint, join(dir, 'adapter'), { model });
    expect(exported).toMatchObject({ method: 'prefix_tuning', files: ['adapter_config.json', 'adapter_model.safetensors'] });
    for (const f of exported.files) expect(existsSync(join(dir, 'adapter', f))).toBe(true);
    const imported = await sp.checkpoints.importPeft({ adapterDir: join(dir, 'adapter'), model, out: join(dir, 'imported.pb') });
    expect(imported).toMatchObject({ path: join(dir, 'imported.pb'), method: 'prefix_tuning', methodConfig: { numVirtualTokens: 3 } });
    expect((await sp.checkpoints.inspect(imported.path)).resumable).toBe(false);
  });

  it('trains P-tuning (LSTM encoder) as the loss falls, generates with it, and its PEFT P_TUNING export generates the same', async () => {
    const spec = pTuning({
      model, numVirtualTokens: 4, encoder: 'lstm', encoderHiddenSize: 32, data: { train: { rows: ROWS } },
      training: { steps: 12, batchSize: 4, logEvery: 1, lr: 0.01, schedule: 'constant' }, runDir: join(dir, 'p-tuning'),
    });
    const events: TrainingEvent[] = [];
    const handle = sp.train(spec);
    for await (const e of handle) events.push(e);
    const result = await handle.result();
    expect(result.status).toBe('completed');
    const losses = events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    expect(losses).toHaveLength(12);
    expect(losses.at(-1)!).toBeLessThan(0.95 * losses[0]!);
    expect(await sp.prompts.load('p', result.checkpoint, { model })).toMatchObject({ method: 'p_tuning' });
    const inputs = ['kite=', 'moon=', 'tea='];
    const ours = await sp.generate({ prompt: 'p', inputs, maxNewTokens: 4 }).result();
    const exported = await sp.checkpoints.exportPeft(result.checkpoint, join(dir, 'p-adapter'), { model });
    expect(exported).toMatchObject({ method: 'p_tuning', files: ['adapter_config.json', 'adapter_model.safetensors'] });
    // PEFT's file keeps the encoded vectors, not the encoder: it imports as the prompt-tuning prompt it equals.
    const imported = await sp.checkpoints.importPeft({ adapterDir: join(dir, 'p-adapter'), model, out: join(dir, 'p-imported.pb') });
    expect(imported).toMatchObject({ method: 'prompt_tuning', methodConfig: { numVirtualTokens: 4 } });
    await sp.prompts.load('p-imported', imported.path, { model });
    expect((await sp.generate({ prompt: 'p-imported', inputs, maxNewTokens: 4 }).result()).outputs).toEqual(ours.outputs);
    const bare = await sp.generate({ model, inputs, maxNewTokens: 4 }).result();
    expect(bare.outputs).not.toEqual(ours.outputs); // the prompt matters, so the equality above is not vacuous
    await sp.prompts.unload('p');
    await sp.prompts.unload('p-imported');
  });

  it('trains suffix tuning for embeddings and reports retrieval metrics', async () => {
    const rows = WORDS.map((w) => ({ query: `what is ${w}`, positive: `${w} is a word`, negatives: [`not ${w}`] }));
    const spec = suffixTuning({
      model, numVirtualTokens: 4, task: { kValues: [1, 3] },
      data: { train: { rows }, eval: { rows: rows.slice(0, 4) } },
      training: { steps: 2, batchSize: 4 }, runDir: join(dir, 'suffix'),
    });
    const training = sp.train(spec);
    const events: TrainingEvent[] = [];
    for await (const e of training) events.push(e);
    expect((await training.result()).status).toBe('completed');
    expect(events.find((e) => e.type === 'eval')).toMatchObject({ metrics: { 'ndcg@3': expect.any(Number), 'recall@1': expect.any(Number) } });
    expect(await sp.checkpoints.inspect((await training.result()).checkpoint)).toMatchObject({ method: 'suffix_tuning', methodConfig: { numVirtualTokens: 4 } });
  });

  it('trains passage tuning for reranking and reports reranking metrics', async () => {
    const rows = WORDS.map((w, i) => ({ query: `${w}?`, positive: `about ${w}`, negatives: [`about ${WORDS[(i + 1) % WORDS.length]}`] }));
    const spec = passageTuning({
      model, numVirtualTokens: 4, numPassageVectors: 2, bottleneckDim: 8, task: { maxHardNegatives: 1 },
      data: { train: { rows }, eval: { rows: rows.slice(0, 4) } },
      training: { steps: 2, batchSize: 4 }, runDir: join(dir, 'passage'),
    });
    const training = sp.train(spec);
    const events: TrainingEvent[] = [];
    for await (const e of training) events.push(e);
    expect((await training.result()).status).toBe('completed');
    expect(events.find((e) => e.type === 'eval')).toMatchObject({ metrics: { mrr: expect.any(Number), 'hits@1': expect.any(Number) } });
  });
});
