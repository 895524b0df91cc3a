// Warm CLI benchmark (not a test): `softprompt embed` of one short text with the embedded MiniLM, as a
// user runs it from a shell (a fresh `node ts/dist/cli/main.js` process each time, JSON lines to a pipe):
//
//   cold   --no-warm: the command starts a worker of its own (Python, torch, transformers, the model),
//          embeds, stops it. This is what every command did before the warm worker.
//   warm   the second `embed` in a row on the warm worker: the command connects to the running worker,
//          whose model is loaded already.
//
//   npm run bench:warm-cli            (builds ts/dist first; --quick: 2 rounds)
//
// The sides take turns (cold, warm, cold, warm, ...) in one run, after one warm-up command that starts
// the warm worker; medians of the wall times. Target: warm < 1 s on the CPU. The warm worker lives in a
// temp cache folder and is stopped at the end. Writes bench/results/warm-cli.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'ts', 'dist', 'cli', 'main.js');
const quick = process.argv.includes('--quick');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 5));
const TEXT = 'how do I list the open ports on this machine?';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const home = mkdtempSync(join(os.tmpdir(), 'sp-bench-warm-'));
const env = { ...process.env, SOFTPROMPT_CACHE_DIR: home, SOFTPROMPT_WORKER_IDLE: '10m' };

function embed(extra) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [cli, 'embed', '--model', 'embedded:minilm', '--text', TEXT, ...extra], { env, encoding: 'utf8' });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`embed ${extra.join(' ')} failed (${r.status}): ${r.stderr}`);
  const dim = JSON.parse(r.stdout.trim().split('\n')[0]).embedding.length;
  return { seconds, dim };
}

try {
  embed([]); // starts the warm worker and loads MiniLM: the first command in a row
  const cold = [];
  const warm = [];
  for (let i = 0; i < ROUNDS; i++) {
    cold.push(embed(['--no-warm']).seconds);
    warm.push(embed([]).seconds);
    console.log(`round ${i + 1}/${ROUNDS}: cold ${cold.at(-1).toFixed(2)} s, warm ${warm.at(-1).toFixed(2)} s`);
  }
  const result = {
    bench: 'warm-cli',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), loadavg: os.loadavg() },
    node: process.version,
    command: `softprompt embed --model embedded:minilm --text '${TEXT}'`,
    rounds: ROUNDS,
    coldSeconds: cold,
    warmSeconds: warm,
    medianColdSeconds: median(cold),
    medianWarmSeconds: median(warm),
    speedup: median(cold) / median(warm),
    target: 'warm < 1 s',
  };
  console.log(`\nembed, one short text (MiniLM), median of ${ROUNDS}: cold ${result.medianColdSeconds.toFixed(2)} s, warm ${result.medianWarmSeconds.toFixed(2)} s`);
  console.log(`warm is ${result.speedup.toFixed(1)}x faster than cold (ratio cold/warm); target warm < 1 s: ${result.medianWarmSeconds < 1 ? 'met' : 'NOT met'}`);
  if (!quick) {
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'warm-cli.json'), JSON.stringify(result, null, 2) + '\n');
  }
} finally {
  spawnSync(process.execPath, [cli, 'worker', 'stop'], { env });
  rmSync(home, { recursive: true, force: true });
}
