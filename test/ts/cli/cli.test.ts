/**
 * The `softprompt` command line end to end, as a child process with the real worker on a tiny GPT-2:
 * train (JSON events), Ctrl-C during train (exit 130, checkpoint kept), inspect, generate with the
 * checkpoint, embed from stdin, doctor, and the usage errors that need no worker. Each command starts
 * its own worker (~3-5 s of CPU each), so independent commands run side by side. Slow-ish: ~30 s.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, buildCli, finish, jsonLines, runCli, spawnCli, waitForLine } from './run-cli.js';

const MODEL = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy'];
const ROWS = WORDS.map((w) => JSON.stringify({ input: `${w}=`, target: [...w].reverse().join('') })).join('\n');

function jobYaml(steps: number, runDir: string): string {
  return [
    'method: prompt_tuning',
    `model: ${JSON.stringify(MODEL)}`,
    'numVirtualTokens: 4',
    'data: { train: { path: rows.jsonl } }   # relative to this file',
    `training: { steps: ${steps}, batchSize: 4, logEvery: 1, lr: 0.1, schedule: constant }`,
    `runDir: ${runDir}`,
    '',
  ].join('\n');
}

describe('softprompt CLI', () => {
  let cli: string;
  let dispose: () => void;
  let dir: string;
  let trained: { result: CliResult; checkpoint: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softprompt-cli-'));
    writeFileSync(join(dir, 'rows.jsonl'), `${ROWS}\n`);
    writeFileSync(join(dir, 'job.yaml'), jobYaml(4, 'run'));
    writeFileSync(join(dir, 'long.yaml'), jobYaml(1_000_000, 'long'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ method: 'prompt_tuning', model: MODEL, data: { train: { path: 'rows.jsonl' } }, training: { lr: -1 }, runDir: 'x' }));
    ({ entry: cli, dispose } = await buildCli());
  });
  afterAll(() => {
    dispose?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('without a worker', () => {
    it('prints help with the commands and exit codes; each command has its own', async () => {
      const main = await runCli(cli, ['--help']);
      expect(main.code).toBe(0);
      for (const word of ['train', 'embed', 'rerank', 'generate', 'eval', 'inspect', 'export', 'import', 'doctor', '130']) expect(main.stdout).toContain(word);
      const embed = await runCli(cli, ['embed', '--help']);
      expect(embed.code).toBe(0);
      expect(embed.stdout).toContain('{"text": "a cat"');
    });

    it('rejects unknown commands and options with exit 2', async () => {
      expect((await runCli(cli, ['fly'])).code).toBe(2);
      const bad = await runCli(cli, ['train', 'job.yaml', '--stepz', '3']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("'--stepz'");
      expect(bad.stdout).toBe('');
    });

    it('a job file that does not validate exits 2 and names the field path', async () => {
      const human = await runCli(cli, ['train', join(dir, 'bad.json')]);
      expect(human.code).toBe(2);
      expect(human.stderr).toContain('job.training.lr: must be > 0');
      const json = await runCli(cli, ['train', join(dir, 'bad.json'), '--json']);
      expect(json.code).toBe(2);
      expect(json.stdout).toBe('');
      expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'validation', issues: ['job.training.lr: must be > 0'] } });
      writeFileSync(join(dir, 'nomethod.yaml'), 'model: { tiny: gpt2 }\n');
      const method = await runCli(cli, ['train', join(dir, 'nomethod.yaml')]);
      expect(method.code).toBe(2);
      expect(method.stderr).toContain('job.method: expected');
    });

    it('--dry-run resolves the job (paths relative to the job file) without starting anything', async () => {
      const r = await runCli(cli, ['train', join(dir, 'job.yaml'), '--dry-run', '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ method: 'prompt_tuning', runDir: join(dir, 'run'), data: { train: { path: join(dir, 'rows.jsonl') } } });
    });
  });

  describe('with the worker', () => {
    let cancelled: CliResult;

    // The two training runs side by side (each starts a worker): 4 steps to the end, and a long one
    // interrupted with SIGINT as soon as its first step event is out.
    beforeAll(async () => {
      const long = spawnCli(cli, ['train', join(dir, 'long.yaml'), '--json']);
      const longDone = finish(long);
      const [result] = await Promise.all([
        runCli(cli, ['train', join(dir, 'job.yaml'), '--json']),
        waitForLine(long, (line) => line.includes('"type":"step"')).then(() => long.kill('SIGINT')),
      ]);
      cancelled = await longDone;
      const last = jsonLines(result.stdout).at(-1) as { checkpoint: string };
      trained = { result, checkpoint: last?.checkpoint };
    });

    it('train --json streams the events as JSON lines, then the result', () => {
      const { result, checkpoint } = trained;
      expect(result.code, result.stderr).toBe(0);
      const events = jsonLines(result.stdout);
      expect(events.map((e) => e['type'])).toEqual(['data', 'started', 'step', 'step', 'step', 'step', 'checkpoint', 'done', 'result']);
      expect(events.at(-1)).toMatchObject({ type: 'result', status: 'completed', summary: { steps: 4 } });
      expect(checkpoint).toBe(join(dir, 'run', 'checkpoints', 'step-00000004.pb'));
      expect(existsSync(checkpoint)).toBe(true);
    });

    it('Ctrl-C (SIGINT) during train cancels cleanly: exit 130, status cancelled, checkpoint kept', () => {
      const r = cancelled;
      expect(r.code, r.stderr).toBe(130);
      const result = jsonLines(r.stdout).at(-1) as { type: string; status: string; checkpoint: string };
      expect(result).toMatchObject({ type: 'result', status: 'cancelled' });
      expect(result.checkpoint).toContain(join(dir, 'long', 'checkpoints'));
      expect(existsSync(result.checkpoint)).toBe(true);
      expect(r.stderr).toContain('cancelling');
    });

    it('inspect, generate with the checkpoint, embed from stdin, doctor (side by side)', async () => {
      const model = JSON.stringify(MODEL);
      const [inspect, generate, embed, doctor] = await Promise.all([
        runCli(cli, ['inspect', trained.checkpoint, '--json']),
        runCli(cli, ['generate', '--json', '--model', model, '--prompt', trained.checkpoint, '--max-new-tokens', '3'], {
          stdin: '{"input": "kite=", "id": 7}\n"moon="\n',
        }),
        runCli(cli, ['embed', '--json', '--model', model], { stdin: '{"text": "a cat", "id": "c"}\n\n"a dog"\n' }),
        runCli(cli, ['doctor', '--json']),
      ]);

      expect(inspect.code, inspect.stderr).toBe(0);
      expect(JSON.parse(inspect.stdout)).toMatchObject({ method: 'prompt_tuning', step: 4, resumable: true, methodConfig: { numVirtualTokens: 4 } });

      expect(generate.code, generate.stderr).toBe(0);
      const outputs = jsonLines(generate.stdout);
      expect(outputs).toHaveLength(2);
      expect(outputs[0]).toMatchObject({ id: 7, input: 'kite=', output: expect.any(String) });
      expect(outputs[1]).toMatchObject({ input: 'moon=', output: expect.any(String) });

      expect(embed.code, embed.stderr).toBe(0);
      const rows = jsonLines(embed.stdout) as { id?: string; embedding: number[] }[];
      expect(rows.map((r) => r.id)).toEqual(['c', undefined]);
      expect(rows[0]!.embedding.length).toBeGreaterThan(0);
      expect(rows[1]!.embedding).toHaveLength(rows[0]!.embedding.length);

      expect(doctor.code, doctor.stderr).toBe(0);
      const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
      expect(report.ok).toBe(true);
      expect(report.checks.filter((c) => ['torch', 'transformers', 'peft'].includes(c.name)).map((c) => c.status)).toEqual(['ok', 'ok', 'ok']);
    });
  });

  describe('input and environment errors (no worker starts)', () => {
    it('a bad row exits 2 naming stdin:line; doctor with a missing Python exits 1 and says what to run', async () => {
      const [row, doctor] = await Promise.all([
        runCli(cli, ['embed', '--model', 'tiny:gpt2'], { stdin: '"ok"\n{"txt": "typo"}\n' }),
        runCli(cli, ['doctor', '--python', join(dir, 'no-such-python'), '--json']),
      ]);
      expect(row.code).toBe(2);
      expect(row.stderr).toContain('stdin:2: text:');
      expect(doctor.code).toBe(1);
      const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { name: string; status: string; fix: string[] }[] };
      expect(report.ok).toBe(false);
      expect(report.checks[0]).toMatchObject({ name: 'python', status: 'missing' });
      expect(report.checks[0]!.fix.join('\n')).toMatch(/make setup|venv/);
    });
  });
});
