/**
 * Job files for `softprompt train`: JSON or YAML, `{ method: 'prompt_tuning' | ..., ...the builder's
 * fields }`. The `method` picks the builder (the one map below); the builder validates the rest with
 * the SDK's own zod schemas, so a job file and `promptTuning({...})` accept exactly the same fields and
 * fail with the same field paths (`job.training.lr: must be > 0`).
 *
 * Relative paths in the file (`data.train.path`, `data.eval.path`, `runDir`, `resumeFrom`,
 * `initCheckpoint`, and a `model.nameOrPath` that starts with `./` or `../`) are relative to the job
 * file's folder, so a job runs the same from any working directory. A job file without `runDir` gets
 * a new one per run (`defaultRunDir`).
 */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../core/errors.js';
import { passageTuning } from '../jobs/passage-tuning.js';
import { prefixTuning } from '../jobs/prefix-tuning.js';
import { pTuning } from '../jobs/p-tuning.js';
import { promptTuning } from '../jobs/prompt-tuning.js';
import { isRecord } from '../spec/schema.js';
import type { JobSpec, MethodName } from '../jobs/spec.js';
import { suffixTuning } from '../jobs/suffix-tuning.js';
import { UsageError } from './exit-codes.js';

/** Method name → builder: the one place a job file's `method` is dispatched. */
export const BUILDERS: Readonly<Record<MethodName, (job: never) => JobSpec>> = {
  prompt_tuning: promptTuning,
  prefix_tuning: prefixTuning,
  suffix_tuning: suffixTuning,
  passage_tuning: passageTuning,
  p_tuning: pTuning,
};

/** Reads a JSON (`.json`) or YAML (anything else; YAML also reads JSON) document; `-` is stdin. */
export async function loadDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await readText(process.stdin) : await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`, [], { cause: error });
  }
  try {
    return extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(`${path}: cannot parse (${(error as Error).message.split('\n')[0]})`, [], { cause: error });
  }
}

async function readText(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(Buffer.from(part as Buffer));
  return Buffer.concat(parts).toString('utf8');
}

/** Overrides from the command line, applied before validation. */
export interface JobOverrides {
  readonly runDir?: string;
  readonly resumeFrom?: string;
  /** `--overwrite`: replace an earlier job's checkpoints in the runDir. */
  readonly overwrite?: boolean;
}

/**
 * The runDir of a job file that names none: `runs/<file stem>-<UTC time>-<random>` beside the job file
 * (the working directory for stdin), new for every run, so two runs never share one.
 */
export function defaultRunDir(file: string, now: Date = new Date()): string {
  const base = file === '-' ? process.cwd() : dirname(resolve(file));
  const stem = file === '-' ? 'job' : basename(file, extname(file)).replace(/[^\w.-]+/g, '_') || 'job';
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return resolve(base, 'runs', `${stem}-${stamp}-${randomBytes(3).toString('hex')}`);
}

/** Builds the job in `doc` (read from `file`): validated and frozen by the method's builder. */
export function buildJob(doc: unknown, file: string, overrides: JobOverrides = {}): JobSpec {
  if (!isRecord(doc)) throw new ValidationError(`job: expected an object, got ${doc === null ? 'null' : Array.isArray(doc) ? 'an array' : typeof doc}`);
  const { method, ...fields } = doc;
  if (typeof method !== 'string' || !Object.hasOwn(BUILDERS, method)) {
    const names = Object.keys(BUILDERS).map((m) => `'${m}'`).join(' | ');
    const got = method === undefined ? 'nothing' : JSON.stringify(method);
    throw new ValidationError(`job.method: expected ${names}, got ${got}`);
  }
  const job = rebase(fields, dirname(resolve(file)));
  if (overrides.runDir !== undefined) job['runDir'] = resolve(overrides.runDir);
  else if (job['runDir'] === undefined) job['runDir'] = defaultRunDir(file);
  if (overrides.overwrite) job['overwrite'] = true;
  if (overrides.resumeFrom !== undefined) job['resumeFrom'] = resolve(overrides.resumeFrom);
  return BUILDERS[method as MethodName](job as never);
}

/** A copy of `job` with its relative paths made absolute against `base`. */
function rebase(job: Record<string, unknown>, base: string): Record<string, unknown> {
  const at = (p: unknown): unknown => (typeof p === 'string' && p !== '' && !isAbsolute(p) ? resolve(base, p) : p);
  const out: Record<string, unknown> = { ...job };
  for (const key of ['runDir', 'resumeFrom', 'initCheckpoint']) if (key in out) out[key] = at(out[key]);
  if (isRecord(out['data'])) {
    const data: Record<string, unknown> = { ...out['data'] };
    for (const key of ['train', 'eval']) {
      const source = data[key];
      if (isRecord(source) && 'path' in source) data[key] = { ...source, path: at(source['path']) };
    }
    out['data'] = data;
  }
  const model = out['model'];
  if (isRecord(model) && typeof model['nameOrPath'] === 'string' && /^\.\.?\//.test(model['nameOrPath'])) {
    out['model'] = { ...model, nameOrPath: at(model['nameOrPath']) };
  }
  return out;
}
