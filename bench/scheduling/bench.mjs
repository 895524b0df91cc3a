// Scheduling benchmark (not a test): inference while a job trains, on one worker, against same-run
// baselines. Two served workers (`softprompt-worker serve`, loopback TCP with CURVE) are measured in
// turn: `--schedule turns` (the default) and `--schedule fifo` (every op alone in arrival order: the
// worker's behaviour before the scheduler).
//
//   npm run bench:scheduling          (builds ts/dist first)
//   BENCH_STEPS=30 BENCH_EMBED_EVERY_MS=250 npm run bench:scheduling
//
// The job: prompt tuning on the embedded SmolLM2-135M (20 virtual tokens, batch 4, rows of ~40 tokens,
// log every step). The inference: `embed` of one short text on the embedded MiniLM, one call every
// BENCH_EMBED_EVERY_MS from a second client. Reported:
//   idle:            embed latency p50/p99 on an idle worker;
//   alone:           the job's time per step with no inference traffic;
//   turns / fifo:    embed latency p50/p99 of the calls made while the job trains, and the job's time per
//                    step with that traffic; ratios: p99 vs (one step + 2 x idle p50) (target <= 1),
//                    training throughput vs alone (target >= 0.9).
// Writes bench/results/scheduling.json. The machine is shared and small: read the ratios.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Softprompt, promptTuning } from '../../ts/dist/index.js';
import { makeKeys, serve } from '../common/served-worker.mjs';
import { resolvePython, workerPythonPath } from '../../ts/dist/internal/python.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const STEPS = Number(process.env.BENCH_STEPS ?? 30);
const EMBED_EVERY_MS = Number(process.env.BENCH_EMBED_EVERY_MS ?? 250);
const IDLE_CALLS = Number(process.env.BENCH_IDLE_CALLS ?? 40);
const env = { ...process.env, PYTHONPATH: workerPythonPath() };
const trainModel = { embedded: 'smollm2' };
const embedModel = { embedded: 'minilm' };
const ROWS = Array.from({ length: 64 }, (_, i) => ({
  input: `Ticket ${i}: the application ${['crashes', 'hangs', 'asks', 'fails'][i % 4]} when I open the settings page after the update, what should I do?`,
  target: ['bug', 'bug', 'question', 'bug'][i % 4],
}));

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round3 = (x) => Math.round(x * 1000) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function embedOnce(sp, i) {
  const t = performance.now();
  await sp.embed({ model: embedModel, texts: [`how do I reset my password, variant ${i}`] });
  return performance.now() - t;
}

/** Trains the job; with `traffic`, a second client embeds every EMBED_EVERY_MS while it trains. */
async function trainWith(trainer, embedder, runDir, traffic) {
  const job = trainer.train(promptTuning({
    model: trainModel, numVirtualTokens: 20, data: { train: { rows: ROWS } },
    training: { steps: STEPS, batchSize: 4, logEvery: 1, lr: 0.03, evalBaseline: false, maxLength: 48 },
    runDir,
  }));
  const stepTimes = [];
  const latencies = [];
  let training = false;
  let last;
  let stop = false;
  const loop = (async () => {
    while (!training && !stop) await sleep(5);
    for (let i = 0; traffic && !stop; i++) {
      const started = performance.now();
      latencies.push(await embedOnce(embedder, i));
      await sleep(Math.max(0, EMBED_EVERY_MS - (performance.now() - started)));
    }
  })();
  for await (const e of job.events()) {
    if (e.type === 'started') {
      training = true;
      last = performance.now();
    }
    if (e.type === 'step') {
      const now = performance.now();
      stepTimes.push(now - last);
      last = now;
    }
  }
  stop = true;
  await job.result();
  await loop;
  const steady = stepTimes.slice(2); // the first steps pay one-time costs
  return { stepMs: steady.reduce((a, b) => a + b, 0) / steady.length, latencies };
}

async function measure(python, keys, schedule, runs) {
  const server = await serve(python, env, keys, ['--schedule', schedule]);
  const connect = () => Softprompt.connect(server.endpoint, { keys: { dir: join(keys, 'client') } });
  const [trainer, embedder] = await Promise.all([connect(), connect()]);
  try {
    await embedOnce(embedder, -1); // loads MiniLM
    const idle = [];
    for (let i = 0; i < IDLE_CALLS; i++) idle.push(await embedOnce(embedder, i));
    const alone = schedule === 'turns' ? await trainWith(trainer, embedder, join(runs, `${schedule}-alone`), false) : undefined;
    const busy = await trainWith(trainer, embedder, join(runs, `${schedule}-busy`), true);
    return { idle, alone, busy };
  } finally {
    await Promise.all([trainer.close(), embedder.close()]);
    server.child.kill('SIGTERM');
  }
}

function versions(python) {
  const py = execFileSync(python, ['-c', 'import sys, torch; print(sys.version.split()[0], torch.__version__)'], { encoding: 'utf8', env }).trim().split(' ');
  return { node: process.version, python: py[0], torch: py[1], softprompt: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version };
}

async function main() {
  const python = resolvePython(undefined).command;
  const keys = makeKeys(python, env, 'sp-bench-sched-');
  const runs = mkdtempSync(join(os.tmpdir(), 'sp-bench-sched-runs-'));
  try {
    const turns = await measure(python, keys, 'turns', runs);
    const fifo = await measure(python, keys, 'fifo', runs);
    const idleP50 = percentile(turns.idle, 50);
    const stepMs = turns.alone.stepMs;
    const target = stepMs + 2 * idleP50;
    const summarize = (m) => ({
      calls: m.busy.latencies.length,
      p50_ms: round3(percentile(m.busy.latencies, 50)),
      p99_ms: round3(percentile(m.busy.latencies, 99)),
      max_ms: round3(Math.max(...m.busy.latencies)),
      p99_vs_target: round3(percentile(m.busy.latencies, 99) / target),
      step_ms_with_traffic: round3(m.busy.stepMs),
      training_throughput_vs_alone: round3(stepMs / m.busy.stepMs),
    });
    const result = {
      what: 'embed latency (MiniLM, 1 text, one call every EMBED_EVERY_MS) while prompt tuning trains on SmolLM2-135M, one served worker',
      settings: { steps: STEPS, embed_every_ms: EMBED_EVERY_MS, idle_calls: IDLE_CALLS, batch_size: 4, max_length: 48, num_virtual_tokens: 20 },
      idle: { p50_ms: round3(idleP50), p99_ms: round3(percentile(turns.idle, 99)) },
      training_alone: { step_ms: round3(stepMs) },
      target_p99_ms: round3(target),
      turns: summarize(turns),
      fifo: summarize(fifo),
      p99_fifo_vs_turns: round3(percentile(fifo.busy.latencies, 99) / percentile(turns.busy.latencies, 99)),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?', platform: `${os.platform()} ${os.release()}` },
      versions: versions(python),
      date: new Date().toISOString(),
    };
    console.log(JSON.stringify(result, null, 2));
    const turnsRow = result.turns;
    console.log(`\nembed p99 while training: ${turnsRow.p99_ms} ms with turns vs ${result.fifo.p99_ms} ms fifo (${result.p99_fifo_vs_turns}x); ` +
      `target ${result.target_p99_ms} ms (one step ${result.training_alone.step_ms} + 2 x idle ${result.idle.p50_ms}): ${turnsRow.p99_vs_target}x; ` +
      `training throughput with traffic ${turnsRow.training_throughput_vs_alone}x alone`);
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'scheduling.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    rmSync(keys, { recursive: true, force: true });
    rmSync(runs, { recursive: true, force: true });
  }
}

await main();
