// IPC benchmark (not a test): the SDK against raw zeromq.js <-> pyzmq, measured in the same run.
//
//   npm run bench:ipc            (builds ts/dist first)
//
// latency:    median round trip of a small request: sp.ping() vs a raw 1-frame echo of the same header
//             bytes. Target: SDK <= 1.3x raw.
// throughput: a 64 MiB f32 tensor to the worker and back: sp.echo() vs a raw echo of one 64 MiB frame;
//             GB/s counts both directions (2 x 64 MiB per round trip). Target: SDK >= 0.8x raw.
// A third column splits the gap: a raw zeromq.js client (no SDK: hand-encoded frames) against a real
// worker. SDK vs that = what the TypeScript side adds; that vs raw echo = what the Python worker adds.
// The sides take turns, one round trip each; on a loaded machine run it a few times and take medians.
// bench/ipc/worker_loop.py measures the Python worker's loop alone (a pyzmq client, no Node).
// Writes bench/results/ipc.json with the machine, versions and date.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Dealer } from 'zeromq';
import { Softprompt, tensor } from '../../ts/dist/index.js';
import { decodeMessage, encodeMessage } from '../../ts/dist/internal/wire.js';
import { resolvePython } from '../../ts/dist/internal/python.js';
import { WorkerProcess } from '../../ts/dist/internal/worker-process.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SMALL_N = Number(process.env.BENCH_SMALL_N ?? 3000);
const BIG_N = Number(process.env.BENCH_BIG_N ?? 12);
const WARMUP = 300;
const BIG = 64 << 20;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

// Runs fns[0], fns[1], ... in turn, n + warmup times; returns each one's timed round trips in µs.
async function timeInTurn(n, warmup, fns) {
  const times = fns.map(() => []);
  for (let i = 0; i < n + warmup; i++) {
    for (const [k, fn] of fns.entries()) {
      const t = process.hrtime.bigint();
      await fn();
      if (i >= warmup) times[k].push(Number(process.hrtime.bigint() - t) / 1e3);
    }
  }
  return times;
}

async function startRaw(python) {
  const dir = mkdtempSync(join(os.tmpdir(), 'sp-bench-'));
  const child = spawn(python, [join(root, 'bench/ipc/raw_echo_server.py'), `ipc://${dir}/raw.sock`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const endpoint = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (l) => resolve(l.replace(/^READY /, '')));
    child.once('exit', (code) => reject(new Error(`raw server exited ${code}`)));
  });
  const sock = new Dealer({ linger: 0 });
  sock.connect(endpoint);
  const roundTrip = async (frames) => {
    await sock.send(frames);
    return sock.receive();
  };
  const stop = async () => {
    await sock.send('stop');
    sock.close();
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
  return { roundTrip, stop };
}

// A bare DEALER speaking the protocol to a real worker, without the SDK's client machinery.
async function startBareWorker(python) {
  const { process: worker, ready } = await WorkerProcess.start({ python: { command: python, source: 'PATH' }, transport: 'ipc', startTimeoutMs: 120_000, log: () => {} });
  const sock = new Dealer({ linger: 0 });
  sock.connect(ready.endpoint);
  let id = 1;
  const ping = async () => {
    await sock.send(encodeMessage({ v: 1, id: id++, kind: 'request', op: 'ping', body: {}, tensors: [] }));
    decodeMessage(await sock.receive());
  };
  const stop = async () => {
    sock.close();
    await worker.stop(2000);
  };
  return { ping, stop };
}

function versions(python) {
  const py = execFileSync(python, ['-c', 'import sys, zmq, msgpack; print(sys.version.split()[0], zmq.__version__, zmq.zmq_version(), ".".join(map(str, msgpack.version)))'], { encoding: 'utf8' }).trim().split(' ');
  const pkg = (name) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  return { node: process.version, 'zeromq.js': pkg('zeromq'), '@msgpack/msgpack': pkg('@msgpack/msgpack'), python: py[0], pyzmq: py[1], libzmq_python: py[2], msgpack_python: py[3], softprompt: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version };
}

async function main() {
  const python = resolvePython(undefined).command;
  const sp = await Softprompt.start();
  const raw = await startRaw(python);
  const bare = await startBareWorker(python);
  try {
    // Same header bytes a ping carries, so the raw echo moves exactly what the SDK moves.
    const pingFrames = encodeMessage({ v: 1, id: 1, kind: 'request', op: 'ping', body: {}, tensors: [] });
    const bigData = new Float32Array(BIG / 4).map((_, i) => i);
    const bigTensor = { x: tensor('f32', [bigData.length], bigData) };
    const bigFrames = encodeMessage({ v: 1, id: 1, kind: 'request', op: 'echo', body: {}, tensors: [{ name: 'x', ...bigTensor.x }] });

    // The sides take turns, one round trip each, so drift (other load on the machine) hits all alike.
    const [rawSmall, bareSmall, sdkSmall] = await timeInTurn(SMALL_N, WARMUP, [() => raw.roundTrip(pingFrames), bare.ping, () => sp.ping()]);
    const [rawBig, sdkBig] = await timeInTurn(BIG_N, 2, [() => raw.roundTrip(bigFrames), () => sp.echo(bigTensor)]);
    const gbps = (us) => (2 * BIG) / (us * 1e3); // bytes per ns = GB/s
    const latency = { raw_us: median(rawSmall), bare_client_to_worker_us: median(bareSmall), sdk_us: median(sdkSmall) };
    latency.ratio = latency.sdk_us / latency.raw_us;
    const throughput = { raw_gbps: gbps(median(rawBig)), sdk_gbps: gbps(median(sdkBig)) };
    throughput.ratio = throughput.sdk_gbps / throughput.raw_gbps;
    const result = {
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1), platform: `${os.platform()} ${os.release()}`, loadavg: os.loadavg().map((x) => +x.toFixed(2)) },
      versions: versions(python),
      transport: 'ipc',
      samples: { small: SMALL_N, big: BIG_N, big_bytes: BIG },
      latency: { ...latency, target_ratio: 1.3, pass: latency.ratio <= 1.3 },
      throughput: { ...throughput, target_ratio: 0.8, pass: throughput.ratio >= 0.8 },
    };
    console.log(`small request  raw ${latency.raw_us.toFixed(1)} µs   sdk ${latency.sdk_us.toFixed(1)} µs   ratio ${latency.ratio.toFixed(2)}x (target <= 1.3x)`);
    console.log(`  split: bare zeromq.js client -> real worker ${latency.bare_client_to_worker_us.toFixed(1)} µs ` +
      `(TS SDK adds ${(latency.sdk_us - latency.bare_client_to_worker_us).toFixed(1)} µs, the Python worker ${(latency.bare_client_to_worker_us - latency.raw_us).toFixed(1)} µs)`);
    console.log(`64 MiB echo    raw ${throughput.raw_gbps.toFixed(2)} GB/s   sdk ${throughput.sdk_gbps.toFixed(2)} GB/s   ratio ${throughput.ratio.toFixed(2)}x (target >= 0.8x)`);
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(join(root, 'bench/results/ipc.json'), JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/ipc.json');
  } finally {
    await bare.stop();
    await raw.stop();
    await sp.close();
  }
}

await main();
