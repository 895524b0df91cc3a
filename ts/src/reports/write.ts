/**
 * `writeRunReport(runDir)`: one self-contained HTML page per training run, written beside the run's
 * own files:
 *
 *     <runDir>/job.json, events.jsonl, checkpoints/   written by the worker (runs.py)
 *     <runDir>/environment.json                       the worker's versions and devices (when known)
 *     <runDir>/report.html                            this report
 *
 * The page has the loss, learning-rate, eval-metric, gradient-norm and throughput charts against the
 * step, a baseline-vs-tuned table when the run evaluated the untrained prompt (an `eval` at step 0 or a
 * `baseline` event), the environment (device and dtype from the `started` event; Python, torch,
 * transformers, peft and GPUs from the worker's capabilities), the timings, the data counts, the
 * checkpoints and the job spec. It opens offline from file:// (the chart library is inlined).
 *
 * `sp.train(...)` writes it when a job ends (completed or cancelled) and returns its path as
 * `result.report`; call this to write it again, or for a run that failed or is still going.
 *
 * @example
 * const path = await writeRunReport('runs/sst2');          // → /abs/runs/sst2/report.html
 * const again = await writeRunReport('runs/sst2', { environment: sp.capabilities, out: 'sst2.html' });
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { type Capabilities, capabilitiesSchema } from '../core/capabilities.js';
import { ValidationError } from '../core/errors.js';
import { packageVersion } from '../internal/package.js';
import { parseOrThrow } from '../internal/validate.js';
import { renderReport } from './render.js';
import { readRunDir } from './run-data.js';

/** Options of {@link writeRunReport}. */
export interface RunReportOptions {
  /** Where to write the page. Default: `<runDir>/report.html`. */
  readonly out?: string;
  /**
   * The worker's environment (`sp.capabilities`). Given, it is also saved as
   * `<runDir>/environment.json` so a later report of the same run shows it; left out, that file is
   * read when present, else the versions show as "not recorded".
   */
  readonly environment?: Capabilities;
  /** The page's heading. Default: `<method> · <model>`, e.g. `prompt_tuning · gpt2 (tiny)`. */
  readonly title?: string;
  /**
   * Seconds the worker took to start before the job (a job sets it from the SDK's own measurement), shown
   * in the timings and counted in the run's total. Saved with the environment, so a later report keeps it.
   */
  readonly workerStartupS?: number;
}

const optionsSchema = z.strictObject({
  out: z.string().min(1).optional(),
  environment: z.custom<Capabilities>((v) => typeof v === 'object' && v !== null, { error: 'expected the capabilities object (sp.capabilities)' }).optional(),
  title: z.string().optional(),
  workerStartupS: z.number().nonnegative().optional(),
});

const ENVIRONMENT_FILE = 'environment.json';

/**
 * Reads `runDir/job.json` and `runDir/events.jsonl` and writes the run's HTML report; resolves with
 * the report's absolute path.
 *
 * @throws {ValidationError} `runDir` is not a run folder (no readable `job.json`), or an option is bad.
 */
export async function writeRunReport(runDir: string, options: RunReportOptions = {}): Promise<string> {
  if (typeof runDir !== 'string' || runDir === '') throw new ValidationError(`runDir: expected a directory path, got ${JSON.stringify(runDir)}`);
  const opts = parseOrThrow(optionsSchema, options, 'options');
  const dir = resolve(runDir);
  const run = await readRunDir(dir);
  const saved = await readEnvironment(dir);
  const environment = opts.environment ?? saved?.capabilities;
  const workerStartupS = opts.workerStartupS ?? (opts.environment ? undefined : saved?.workerStartupS);
  if (opts.environment) {
    const doc = { ...toWire(opts.environment), ...(workerStartupS === undefined ? {} : { worker_startup_s: workerStartupS }) };
    await writeAtomically(join(dir, ENVIRONMENT_FILE), `${JSON.stringify(doc, null, 2)}\n`);
  }
  const html = renderReport({
    run,
    ...(environment ? { environment } : {}),
    ...(workerStartupS === undefined ? {} : { workerStartupS }),
    ...(opts.title !== undefined ? { title: opts.title } : {}),
    sdkVersion: packageVersion(),
    generatedAt: Date.now() / 1000,
  });
  const out = resolve(opts.out ?? join(dir, 'report.html'));
  await writeAtomically(out, html);
  return out;
}

/** `environment.json` as the worker spells capabilities (snake_case), so one schema reads both. */
function toWire(c: Capabilities): Record<string, unknown> {
  return {
    python: c.python,
    torch: c.torch,
    transformers: c.transformers,
    peft: c.peft,
    devices: c.devices,
    cuda: c.cuda,
    bf16: c.bf16,
    gpus: c.gpus.map((g) => ({ name: g.name, memory_bytes: g.memoryBytes })),
    methods: c.methods,
  };
}

async function readEnvironment(dir: string): Promise<{ capabilities: Capabilities; workerStartupS?: number } | undefined> {
  try {
    const doc = JSON.parse(await readFile(join(dir, ENVIRONMENT_FILE), 'utf8')) as Record<string, unknown>;
    const parsed = capabilitiesSchema.safeParse(doc);
    if (!parsed.success) return undefined;
    const startup = doc['worker_startup_s'];
    return { capabilities: parsed.data, ...(typeof startup === 'number' ? { workerStartupS: startup } : {}) };
  } catch {
    return undefined; // absent or unreadable: the versions show as "not recorded"
  }
}

/** Readers (a browser reloading the page) never see a half-written file. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, 'utf8');
  await rename(tmp, path);
}
