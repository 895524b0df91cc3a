/**
 * Sweep files for `softprompt sweep`: several jobs on one model, trained together (`sp.trainMany`).
 *
 *     base:                                # a job file's fields (cli/job-file.ts), shared by every job
 *       method: prompt_tuning
 *       model: { nameOrPath: gpt2 }
 *       task: { type: classification, labels: [positive, negative] }
 *       data: { train: { path: sst2.jsonl }, evalFraction: 0.1 }
 *       training: { steps: 500 }
 *     jobs:                                # each: a name, and what it changes in the base
 *       - { name: lr-0.01, training: { lr: 0.01 } }
 *       - { name: n-50, numVirtualTokens: 50, training: { lr: 0.03 } }
 *
 * A job is the base with its fields merged in (maps merge key by key, any other value replaces), validated by
 * the method's builder like a job file. Its runDir, unless it names one, is `<sweep runDir>/<name>`; the sweep's
 * runDir is `base.runDir`, else a new `runs/<file>-<time>-<random>` beside the file.
 */
import { ValidationError } from '../core/errors.js';
import type { JobSpec } from '../jobs/spec.js';
import { isRecord } from '../spec/schema.js';
import { buildJob, defaultRunDir } from './job-file.js';
import { resolve, dirname, join } from 'node:path';

/** One job of a sweep: its name and its validated spec. */
export interface SweepJob {
  readonly name: string;
  readonly spec: JobSpec;
}

/** The jobs of the sweep in `doc` (read from `file`), each validated; errors name the job (`jobs[1] (lr-0.1).training.lr`). */
export function buildSweep(doc: unknown, file: string): SweepJob[] {
  if (!isRecord(doc) || !isRecord(doc['base']) || !Array.isArray(doc['jobs'])) {
    throw new ValidationError('sweep: expected { base: { method, ...a job file }, jobs: [{ name, ...changes }, ...] }');
  }
  const unknown = Object.keys(doc).filter((k) => k !== 'base' && k !== 'jobs');
  if (unknown.length > 0) throw new ValidationError(`sweep.${unknown[0]}: unknown field (a sweep file has base and jobs)`);
  const { base, jobs } = doc as { base: Record<string, unknown>; jobs: unknown[] };
  if (jobs.length === 0) throw new ValidationError('sweep.jobs: expected at least one job');
  const folder = typeof base['runDir'] === 'string' ? resolve(dirname(resolve(file)), base['runDir']) : defaultRunDir(file);
  const names = new Set<string>();
  return jobs.map((entry, i) => {
    if (!isRecord(entry) || typeof entry['name'] !== 'string' || !/^[\w.-]+$/.test(entry['name'])) {
      throw new ValidationError(`sweep.jobs[${i}].name: expected a name of letters, digits, '.', '_' or '-'`);
    }
    const { name, ...changes } = entry as { name: string } & Record<string, unknown>;
    if (names.has(name)) throw new ValidationError(`sweep.jobs[${i}].name: '${name}' is used twice`);
    names.add(name);
    const job = merge(base, changes);
    if (changes['runDir'] === undefined) job['runDir'] = join(folder, name);
    try {
      return { name, spec: buildJob(job, file) };
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      const at = (issue: string) => issue.replace(/^job\b/, `sweep.jobs[${i}] (${name})`);
      throw new ValidationError(at(error.message), error.issues.map(at), { cause: error });
    }
  });
}

/** `base` with `changes` merged in: maps key by key, anything else replaced. */
function merge(base: Record<string, unknown>, changes: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    const current = out[key];
    out[key] = isRecord(current) && isRecord(value) ? merge(current, value) : value;
  }
  return out;
}
