// Load benchmark (not a test): many concurrent embed/rerank calls from several clients against one
// shared worker (`softprompt-worker serve`, loopback TCP with CURVE), measured against a same-run
// baseline: the same calls one at a time from one client.
//
//   npm run bench:load             (builds ts/dist first)
//   BENCH_CLIENTS=4 BENCH_PER_CLIENT=250 BENCH_ROUNDS=3 npm run bench:load
//
// Each call embeds one distinct text (3 of 4 calls) or reranks two passages for one distinct query (the
// 4th), on a tiny GPT-2 (random weights: the numbers measure the SDK, the wire and the worker's queue,
// not a model). Reported:
//   baseline:   sequential calls/s and latency p50/p99 (one client, one call at a time);
//   concurrent: per round, calls/s over the wall time of all calls, latency p50/p99 from call to
//               answer (the client's in-flight queue included), `busy` answers, and answers that differ
//               from the baseline's answer for the same text (crossed: must be 0);
//   memory:     the worker's RSS after the baseline and after each concurrent round (bounded: no growth
//               with more rounds).
// Writes bench/results/load.json with the machine, versions and date. The machine is shared and small:
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

const calls = Array.from({ length: CLIENTS }, (_, c) =>
  Array.from({ length: PER_CLIENT }, (_, i) => ({
    text: `${WORDS[i % 11]} ${WORDS[(i * 7 + c) % 11]} c${c} n${i}`,
    rerank: i % 4 === 3,
    passages: [`${WORDS[(i + c) % 11]} shore`, `the ${WORDS[(i * 3) % 11]} of c${c}`],
  })),
);

/** Runs one call; resolves with its answer as a plain array (embedding row, or scores by passage). */
async function run(sp, call) {
  if (call.rerank) {
    const r = await sp.rerank({ model, query: call.text, passages: call.passages });
    return [...r.passages].sort((a, b) => a.index - b.index).map((p) => p.logLikelihood);
  }
  return Array.from((await sp.embed({ model, texts: [call.text] })).row(0));
}

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round3 = (x) => Math.round(x * 1000) / 1000;
const same = (a, b) => a.length === b.length && a.every((v, k) => Math.abs(v - b[k]) <= 1e-5 * (1 + Math.abs(b[k])));

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
    await run(clients[0], calls[0][0]); // loads the model
    await run(clients[0], calls[0][3]);

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
        mix: '3/4 embed (1 text), 1/4 rerank (1 query, 2 passages)',
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
    writeFileSync(join(root, 'bench/results/load.json'), JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify({ baseline: result.baseline_sequential, rounds, ratios: result.ratios }, null, 2));
  } finally {
    await Promise.all(clients.map((sp) => sp.close()));
    server.child.kill('SIGTERM');
    rmSync(keys, { recursive: true, force: true });
  }
}

await main();
