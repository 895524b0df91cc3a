/**
 * `softprompt sweep`, as a user runs it: a sweep file of three jobs (two learning rates, one longer prompt) on a
 * tiny GPT-2 trains in one worker, each job in its own run directory; --json streams events tagged with the
 * job's name; a bad job is named; --dry-run lists the jobs.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, jsonLines, runCli } from './run-cli.js';

const MODEL = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const ROWS = ['abc', 'hello', 'kite', 'moon'].map((w) => JSON.stringify({ input: `${w}=`, target: [...w].reverse().join('') })).join('\n');

const sweepYaml = (jobs: string) =>
  [
    'base:',
    '  method: prompt_tuning',
    `  model: ${JSON.stringify(MODEL)}`,
    '  numVirtualTokens: 2',
    '  data: { train: { path: rows.jsonl } }',
    '  training: { steps: 3, batchSize: 2, logEvery: 1 }',
    '  runDir: sweep-runs',
    'jobs:',
    jobs,
  ].join('\n');

describe('softprompt sweep', () => {
  let dir: string;
  let cli: string;
  let dispose = () => {};
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-sweep-cli-'));
    writeFileSync(join(dir, 'rows.jsonl'), ROWS);
    writeFileSync(join(dir, 'sweep.yaml'), sweepYaml('  - { name: lr-0.01, training: { lr: 0.01 } }\n  - { name: lr-0.1, training: { lr: 0.1 } }\n  - { name: n-6, numVirtualTokens: 6 }'));
    writeFileSync(join(dir, 'bad.yaml'), sweepYaml('  - { name: ok }\n  - { name: broken, training: { lr: -1 } }'));
    ({ entry: cli, dispose } = await buildCli());
  }, 120_000);
  afterAll(() => {
    dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains every job of the file together, each in <runDir>/<name>, events tagged with its name', async () => {
    const r = await runCli(cli, ['sweep', join(dir, 'sweep.yaml'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    const results = lines.filter((l) => l['type'] === 'result');
    expect(results.map((l) => l['job']).sort()).toEqual(['lr-0.01', 'lr-0.1', 'n-6']);
    for (const result of results) {
      expect(result).toMatchObject({ status: 'completed', summary: { steps: 3 } });
      expect(result['checkpoint']).toBe(join(dir, 'sweep-runs', String(result['job']), 'checkpoints', 'step-00000003.pb'));
      expect(existsSync(join(dir, 'sweep-runs', String(result['job']), 'report.html'))).toBe(true);
    }
    expect(lines.filter((l) => l['type'] === 'step' && l['job'] === 'n-6')).toHaveLength(3);
  }, 120_000);

  it('names the bad job and its field; --dry-run lists the jobs', async () => {
    const bad = await runCli(cli, ['sweep', join(dir, 'bad.yaml')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('sweep.jobs[1] (broken).training.lr');
    const dry = await runCli(cli, ['sweep', join(dir, 'sweep.yaml'), '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('valid sweep of 3 jobs');
    expect(dry.stdout).toContain(`n-6: prompt_tuning → ${join(dir, 'sweep-runs', 'n-6')}`);
  }, 60_000);
});
