// Load benchmark (not a test): many concurrent embed/rerank/classify/generate calls from several clients
// against one shared worker (`softprompt-worker serve`, loopback TCP with CURVE), measured against a
// same-run baseline: the same calls one at a time from one client.
//
//   npm run bench:load             (builds ts/dist first)
//   BENCH_CLIENTS=4 BENCH_PER_CLIENT=250 BENCH_ROUNDS=3 npm run bench:load
//   BENCH_MIX=embed npm run bench:load   (every call embeds: issue 13's 1,000 small embed calls; writes load-embed.json)
//
// Each call is about one distinct text: it embeds it (1/2 of the calls), reranks two passages for it as a
// query (1/4), classifies it among three labels (1/8) or continues it by 4 greedy tokens (1/8), on a tiny
// GPT-2 (random weights: the numbers measure the SDK, the wire, the worker's queue and its cross-request
// batching, not a model). Every one of these ops coalesces concurrent calls (proto/WIRE.md, Scheduling).
// Reported:
//   baseline:   sequential calls/s and latency p50/p99 (one client, one call at a time);
//   concurrent: per round, calls/s over the wall time of all calls, latency p50/p99 from call to
//               answer (the client's in-flight queue included), `busy` answers, and answers that differ
//               from the baseline's answer for the same text (crossed: must be 0);
//   memory:     the worker's RSS after the baseline and after each concurrent round (bounded: no growth
//               with more rounds).
// Writes bench/results/load.json (load-embed.json) with the machine, versions and date. The machine is shared and small:
// run it a few times and read the ratios rather than the absolute numbers.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemoteError, Softprompt } from '../../ts/dist/index.js';
import { makeKeys, serve } from '../common/served-worker.mjs';
import { resolvePython, workerPythonPath } from '../../ts/dist/internal/python.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 4);
const PER_CLIENT = Number(process.env.BENCH_PER_CLIENT ?? 250);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MAX_IN_FLIGHT = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 128); // the SDK's default
const model = { tiny: 'gpt2' };
const WORDS = ['river', 'stone', 'copper', 'violet', 'engine', 'harbor', 'maple', 'signal', 'quartz', 'lantern', 'orbit'];
const env = { ...process.env, PYTHONPATH: workerPythonPath(), OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' };

const MIX = process.env.BENCH_MIX ?? 'mixed';
const LABELS = ['yes', 'no', 'maybe'];
const MIXES = {
  mixed: ['embed', 'classify', 'embed', 'rerank', 'embed', 'generate', 'embed', 'rerank'], // call i: kinds[i % 8]
  embed: ['embed'],
};
const KINDS = MIXES[MIX];
if (!KINDS) throw new Error(`BENCH_MIX: ${MIX} is not one of ${Object.keys(MIXES).join(', ')}`);

const calls = Array.from({ length: CLIENTS }, (_, c) =>
  Array.from({ length: PER_CLIENT }, (_, i) => ({
    text: `${WORDS[i % 11]} ${WORDS[(i * 7 + c) % 11]} c${c} n${i}`,
    kind: KINDS[i % KINDS.length],
    passages: [`${WORDS[(i + c) % 11]} shore`, `the ${WORDS[(i * 3) % 11]} of c${c}`],
  })),
);

/** Runs one call; resolves with its answer as a plain array (embedding row, scores by passage or label,
 * or the generated text). */
async function run(sp, call) {
  switch (call.kind) {
    case 'rerank': {
      const r = await sp.rerank({ model, query: call.text, passages: call.passages });
      return [...r.passages].sort((a, b) => a.index - b.index).map((p) => p.logLikelihood);
    }
    case 'classify':
      return (await sp.classify({ model, inputs: [call.text], labels: LABELS })).scores[0];
    case 'generate':
      return (await sp.generate({ model, inputs: [call.text], maxNewTokens: 4 }).result()).outputs;
    default:
      return Array.from((await sp.embed({ model, texts: [call.text] })).row(0));
  }
}

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round3 = (x) => Math.round(x * 1000) / 1000;
const same = (a, b) =>
  a.length === b.length && a.every((v, k) => (typeof v === 'string' ? v === b[k] : Math.abs(v - b[k]) <= 1e-5 * (1 + Math.abs(b[k]))));

function rssMiB(pid) {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1];
  return round3(Number(kb) / 1024);
}


function versions(python) {
  const py = execFileSync(python, ['-c', 'import sys, zmq, torch; print(sys.version.split()[0], zmq.__version__, zmq.zmq_version(), torch.__version__)'], { encoding: 'utf8', env }).trim().split(' ');
  const pkg = (name) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  return { node: process.version, 'zeromq.js': pkg('zeromq'), python: py[0], pyzmq: py[1], libzmq_python: py[2], torch: py[3], softprompt: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version };
}

async function main() {
  const python = resolvePython(undefined).command;
  const keys = makeKeys(python, env, 'sp-bench-load-');
  const server = await serve(python, env, keys);
  const connect = () => Softprompt.connect(server.endpoint, { keys: { dir: join(keys, 'client') }, maxInFlight: MAX_IN_FLIGHT });
  const clients = await Promise.all(Array.from({ length: CLIENTS }, connect));
  try {
    for (const i of [0, 1, 3, 5]) await run(clients[0], calls[0][i]); // loads the model, a call of each kind

    // Baseline: every call once, one at a time, from one client; its answers are the reference.
    const reference = new Map();
    const seqLatency = [];
    const seqStart = performance.now();
    for (const call of calls.flat()) {
      const t = performance.now();
      reference.set(call.text, await run(clients[0], call));
      seqLatency.push(performance.now() - t);
    }
    const seqSeconds = (performance.now() - seqStart) / 1000;
    const rssAfterBaseline = rssMiB(server.pid);

    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const latency = [];
      let busy = 0;
      let crossed = 0;
      let otherErrors = 0;
      const start = performance.now();
      await Promise.all(
        clients.flatMap((sp, c) =>
          calls[c].map(async (call) => {
            const t = performance.now();
            try {
              const answer = await run(sp, call);
              latency.push(performance.now() - t);
              if (!same(answer, reference.get(call.text))) crossed++;
            } catch (error) {
              if (error instanceof RemoteError && error.code === 'busy') busy++;
              else otherErrors++;
            }
          }),
        ),
      );
      const seconds = (performance.now() - start) / 1000;
      rounds.push({
        calls: CLIENTS * PER_CLIENT,
        answered: latency.length,
        busy,
        crossed,
        other_errors: otherErrors,
        calls_per_s: round3((CLIENTS * PER_CLIENT) / seconds),
        // From the call to its answer: with every call fired at once, mostly time spent queued (the
        // worker runs one compute op at a time), so p50 is about half the round's wall time.
        latency_ms: { p50: round3(percentile(latency, 50)), p99: round3(percentile(latency, 99)) },
        worker_rss_mib: rssMiB(server.pid),
      });
    }

    const best = rounds.reduce((a, b) => (b.calls_per_s > a.calls_per_s ? b : a));
    const result = {
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1), platform: `${os.platform()} ${os.release()}`, loadavg: os.loadavg().map((x) => +x.toFixed(2)) },
      versions: versions(python),
      setup: {
        worker: 'softprompt-worker serve, tcp://127.0.0.1 with CURVE, --max-queued 1024, OMP_NUM_THREADS=' + env.OMP_NUM_THREADS,
        model: 'tiny:gpt2 (random weights)',
        clients: CLIENTS,
        calls_per_client: PER_CLIENT,
        mix: {
          mixed: '1/2 embed (1 text), 1/4 rerank (1 query, 2 passages), 1/8 classify (1 input, 3 labels), 1/8 generate (1 input, 4 greedy tokens)',
          embed: 'every call embeds 1 text',
        }[MIX],
        max_in_flight_per_client: MAX_IN_FLIGHT,
        latency: 'from the call to its answer; in the concurrent rounds every call is fired at once, so it is mostly queueing',
      },
      baseline_sequential: {
        calls: calls.flat().length,
        calls_per_s: round3(calls.flat().length / seqSeconds),
        latency_ms: { p50: round3(percentile(seqLatency, 50)), p99: round3(percentile(seqLatency, 99)) },
      },
      concurrent_rounds: rounds,
      worker_rss_mib: { after_baseline: rssAfterBaseline, after_rounds: rounds.map((r) => r.worker_rss_mib) },
      ratios: { best_concurrent_vs_sequential_throughput: round3(best.calls_per_s / (calls.flat().length / seqSeconds)) },
    };
    writeFileSync(join(root, `bench/results/load${MIX === 'mixed' ? '' : `-${MIX}`}.json`), JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify({ baseline: result.baseline_sequential, rounds, ratios: result.ratios }, null, 2));
  } finally {
    await Promise.all(clients.map((sp) => sp.close()));
    server.child.kill('SIGTERM');
    rmSync(keys, { recursive: true, force: true });
  }
}

await main();
