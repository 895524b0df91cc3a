/**
 * The `softprompt` command line end to end, as a child process with the real worker on a tiny GPT-2:
 * train (JSON events; human output with the baseline table), Ctrl-C during train (exit 130, checkpoint
 * kept), inspect (in TypeScript, and in the worker with --model), generate and classify with a
 * checkpoint, rerank with only a passage_tuning checkpoint, embed from stdin and of long texts,
 * export/import, doctor, and the usage and data errors. Training jobs start their own workers (~3-5 s
 * of CPU each), so they run side by side; the other commands share the warm worker of a cache folder
 * of this file's own (SOFTPROMPT_CACHE_DIR), stopped at the end. Slow-ish: ~60 s.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, buildCli, finish, jsonLines, runCli, spawnCli, waitForLine } from './run-cli.js';

const MODEL = { tiny: 'gpt2', overrides: { initializer_range: 0.1 }, device: 'cpu' };
const WORDS = ['abc', 'hello', 'kite', 'moon', 'stone', 'sun', 'tea', 'xy'];
const ROWS = WORDS.map((w) => JSON.stringify({ input: `${w}=`, target: [...w].reverse().join('') })).join('\n');

const LABELED = ['good film', 'bad film', 'great acting', 'awful plot', 'nice music', 'poor sound']
  .map((input, i) => JSON.stringify({ input: `${input} ->`, label: i % 2 === 0 ? 'yes' : 'no' })).join('\n');
// Trained towards "yes", evaluated on "no": training cannot beat the untuned prompt, and the CLI must say so.
const SAYS = (label: string) => LABELED.split('\n').map((line) => JSON.stringify({ ...JSON.parse(line), label })).join('\n');
const PASSAGES = [
  { query: 'mount usb', positive: 'mount /dev/sdb1 /mnt attaches the drive', negatives: ['apt install vim installs vim'] },
  { query: 'install package', positive: 'apt install NAME installs a package', negatives: ['umount /mnt detaches it'] },
].map((r) => JSON.stringify(r)).join('\n');

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
    writeFileSync(join(dir, 'labeled.jsonl'), `${LABELED}\n`);
    writeFileSync(join(dir, 'yes.jsonl'), `${SAYS('yes')}\n`);
    writeFileSync(join(dir, 'no.jsonl'), `${SAYS('no')}\n`);
    writeFileSync(join(dir, 'classify.yaml'), [
      'method: prompt_tuning', `model: ${JSON.stringify(MODEL)}`, 'numVirtualTokens: 4',
      'task: { type: classification, labels: [yes, no] }', 'data: { train: { path: yes.jsonl }, eval: { path: no.jsonl } }',
      'training: { steps: 2, batchSize: 2, lr: 0.1 }', 'runDir: classify-run', '',
    ].join('\n'));
    writeFileSync(join(dir, 'passages.jsonl'), `${PASSAGES}\n`);
    writeFileSync(join(dir, 'passage.yaml'), [
      'method: passage_tuning', `model: ${JSON.stringify(MODEL)}`, 'numVirtualTokens: 2', 'numPassageVectors: 1',
      'data: { train: { path: passages.jsonl } }', 'training: { steps: 2, batchSize: 2 }', 'runDir: passage-run', '',
    ].join('\n'));
    writeFileSync(join(dir, 'baddata.jsonl'), '{"input": "a=", "target": "a"}\n{"input": "b="}\n');
    writeFileSync(join(dir, 'baddata.yaml'), jobYaml(2, 'bad-run').replace('rows.jsonl', 'baddata.jsonl'));
    // The other commands share one warm worker, in a cache folder of this file's own.
    process.env['SOFTPROMPT_CACHE_DIR'] = join(dir, 'cache');
    ({ entry: cli, dispose } = await buildCli());
  });
  afterAll(async () => {
    if (cli) await runCli(cli, ['worker', 'stop']);
    delete process.env['SOFTPROMPT_CACHE_DIR'];
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
      const job = JSON.parse(r.stdout) as { training: Record<string, unknown> };
      expect(job).toMatchObject({ method: 'prompt_tuning', runDir: join(dir, 'run'), data: { train: { path: join(dir, 'rows.jsonl') } } });
      expect(job.training['steps']).toBe(4);
      expect(job.training).not.toHaveProperty('epochs'); // steps decide: epochs would only confuse
    });

    it('-v prints the version; a mistyped command or option gets a did-you-mean', async () => {
      const [version, command, option] = await Promise.all([
        runCli(cli, ['-v']),
        runCli(cli, ['embd', '--text', 'x']),
        runCli(cli, ['train', 'job.yaml', '--dry-rn']),
      ]);
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
      expect(command.code).toBe(2);
      expect(command.stderr).toContain("did you mean 'embed'?");
      expect(option.code).toBe(2);
      expect(option.stderr).toContain("did you mean '--dry-run'?");
    });

    it('--out into a missing folder is a clear usage error (exit 2), not a stack trace', async () => {
      const r = await runCli(cli, ['embed', '--model', 'tiny:gpt2', '--text', 'x', '--out', join(dir, 'no', 'such', 'v.jsonl')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`softprompt: error: --out ${join(dir, 'no', 'such', 'v.jsonl')}: the folder ${join(dir, 'no', 'such')} does not exist (create it first: mkdir -p ${join(dir, 'no', 'such')})\n`);
    });

    it('import without --model needs the adapter folder to name its base model', async () => {
      const r = await runCli(cli, ['import', '--peft', join(dir, 'not-an-adapter'), '--out', join(dir, 'x.pb')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('adapter_config.json does not exist');
    });
  });

  let classifyRun: CliResult;
  let passageRun: CliResult;
  let badData: CliResult;

  describe('with the worker', () => {
    let cancelled: CliResult;

    // The training runs side by side (each starts a worker of its own): 4 steps to the end, a long one
    // interrupted with SIGINT as soon as its first step event is out, a classification job with human
    // output, a passage_tuning job, and one whose data file has a bad row.
    beforeAll(async () => {
      const long = spawnCli(cli, ['train', join(dir, 'long.yaml'), '--json']);
      const longDone = finish(long);
      const [result, classified, passage, bad] = await Promise.all([
        runCli(cli, ['train', join(dir, 'job.yaml'), '--json']),
        runCli(cli, ['train', join(dir, 'classify.yaml')]),
        runCli(cli, ['train', join(dir, 'passage.yaml'), '--json']),
        runCli(cli, ['train', join(dir, 'baddata.yaml')]),
        waitForLine(long, (line) => line.includes('"type":"step"')).then(() => long.kill('SIGINT')),
      ]);
      cancelled = await longDone;
      const last = jsonLines(result.stdout).at(-1) as { checkpoint: string };
      trained = { result, checkpoint: last?.checkpoint };
      [classifyRun, passageRun, badData] = [classified, passage, bad];
    }, 240_000);

    it('train on a terminal-less stdout: a worker note at once, then untuned vs tuned and the report', () => {
      const r = classifyRun;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr.split('\n')[0]).toContain('starting the worker');
      expect(r.stdout).toMatch(/held-out\s+untuned prompt\s+tuned prompt/);
      expect(r.stdout).toMatch(/accuracy\s+\d+\.\d%\s+\d+\.\d%/);
      expect(r.stdout).toContain(`report:     ${join(dir, 'classify-run', 'report.html')}`);
      // Model selection: the untuned prompt stays the best on the "no" eval split, and the CLI says so plainly.
      expect(r.stdout).toMatch(/^warning: no step beat the untuned prompt on the eval split \(accuracy /m);
      expect(r.stdout).toContain(`best:       ${join(dir, 'classify-run', 'checkpoints', 'best.pb')} (step 0; load this one)`);
      expect(r.stdout).toContain('(last step; resume from this one)');
    });

    it('a bad row in a data file is a data error: exit 2 with file:line', () => {
      expect(badData.code, badData.stderr).toBe(2);
      expect(badData.stderr).toContain('baddata.jsonl:2');
    });

    it('train --json streams the events as JSON lines, then the result', () => {
      const { result, checkpoint } = trained;
      expect(result.code, result.stderr).toBe(0);
      const events = jsonLines(result.stdout);
      expect(events.map((e) => e['type'])).toEqual(['data', 'started', 'step', 'step', 'step', 'step', 'checkpoint', 'selection', 'done', 'result']);
      expect(events.at(-3)).toMatchObject({ by: null, best: null, message: expect.stringMatching(/^no eval rows/) }); // no eval split: said, not guessed
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

  describe('with the warm worker', () => {
    it('inspect reads the checkpoint in TypeScript; with --model the worker agrees and says it fits', async () => {
      const [local, remote] = await Promise.all([
        runCli(cli, ['inspect', trained.checkpoint, '--json']),
        runCli(cli, ['inspect', trained.checkpoint, '--json', '--model', JSON.stringify(MODEL)]),
      ]);
      expect(local.code, local.stderr).toBe(0);
      expect(remote.code, remote.stderr).toBe(0);
      const fromTs = JSON.parse(local.stdout) as Record<string, unknown>;
      const fromWorker = JSON.parse(remote.stdout) as Record<string, unknown>;
      expect(fromWorker['compatible']).toBe(true);
      delete fromWorker['compatible'];
      expect(fromTs).toEqual(fromWorker);
    });

    it('status shows the warm worker\'s loaded model (JSON and for people)', async () => {
      await runCli(cli, ['embed', '--json', '--model', JSON.stringify(MODEL)], { stdin: '"load the model"\n' });
      const [json, text] = await Promise.all([runCli(cli, ['status', '--json']), runCli(cli, ['status'])]);
      expect(json.code, json.stderr).toBe(0);
      const status = JSON.parse(json.stdout) as { models: { model: Record<string, unknown>; bytes: number }[]; jobs: unknown[]; maxTrainingJobs: number; batching: { maxRows: number; ops: object } };
      expect(status.models.some((m) => m.model['tiny'] === 'gpt2' && m.bytes > 0)).toBe(true);
      expect(status.jobs).toEqual([]);
      expect(status.maxTrainingJobs).toBe(2);
      expect(status.batching).toMatchObject({ maxRows: 256, ops: expect.any(Object) }); // the worker's default --max-batch-rows
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/\nbatching: \d+ merged runs answered \d+ requests.*, at most 256 rows, waiting 0 ms/);
      expect(text.stdout).toMatch(/models\n {2}tiny gpt2 +cpu float32, /);
      expect(text.stdout).toContain('training jobs (0 running of at most 2, 0 queued)');
    });

    it('classify takes its labels from the job; rerank and eval reranking take the model from the checkpoint', async () => {
      const passage = (jsonLines(passageRun.stdout).at(-1) as { checkpoint: string }).checkpoint;
      const classifyCkpt = join(dir, 'classify-run', 'checkpoints', 'step-00000002.pb');
      const [classified, reranked, evaluated] = await Promise.all([
        runCli(cli, ['classify', '--prompt', classifyCkpt, '--text', 'good film ->', '--text', 'awful plot ->']),
        runCli(cli, ['rerank', '--prompt', passage], { stdin: '{"query": "mount usb", "passages": ["apt install vim", "mount /dev/sdb1 /mnt"]}\n' }),
        runCli(cli, ['eval', 'reranking', join(dir, 'passages.jsonl'), '--prompt', passage, '--json']),
      ]);
      expect(classified.code, classified.stderr).toBe(0);
      const predictions = jsonLines(classified.stdout) as { input: string; label: string; scores: Record<string, number> }[];
      expect(predictions.map((p) => p.input)).toEqual(['good film ->', 'awful plot ->']);
      for (const p of predictions) expect(['yes', 'no']).toContain(p.label);
      expect(Object.keys(predictions[0]!.scores)).toEqual(['yes', 'no']);

      expect(reranked.code, reranked.stderr).toBe(0);
      expect(jsonLines(reranked.stdout)[0]).toMatchObject({ reranker: 'passage_tuning', passages: [expect.any(Object), expect.any(Object)] });
      expect(evaluated.code, evaluated.stderr).toBe(0);
      expect(JSON.parse(evaluated.stdout)).toMatchObject({ reranker: 'passage_tuning', queries: 2 });
    });

    it('generate --prompt takes the model from the checkpoint (the README line)', async () => {
      const r = await runCli(cli, ['generate', '--prompt', trained.checkpoint, '--text', 'Hello', '--max-new-tokens', '2']);
      expect(r.code, r.stderr).toBe(0);
      expect(jsonLines(r.stdout)).toEqual([{ input: 'Hello', output: expect.any(String) }]);
    });

    it('embed sizes its requests by bytes: long texts go through; one too long for any request is named', async () => {
      // 3 x 600 KB: by rows alone one request (over the 1 MiB header limit); by bytes, one each.
      const long = (c: string, n = 300_000) => JSON.stringify({ text: c.repeat(n) });
      const r = await runCli(cli, ['embed', '--model', JSON.stringify(MODEL)], { stdin: `${long('a ')}\n${long('b ')}\n${long('c ')}\n` });
      expect(r.code, r.stderr).toBe(0);
      expect(jsonLines(r.stdout)).toHaveLength(3);
      const huge = await runCli(cli, ['embed', '--model', JSON.stringify(MODEL)], { stdin: `"x"\n${long('d ', 600_000)}\n` });
      expect(huge.code).toBe(2);
      expect(huge.stderr).toContain('stdin:2: the row holds 1200000 bytes of text');
    });

    it('export --out, then import without --model (the adapter names its base model)', async () => {
      const adapter = join(dir, 'adapter');
      const exported = await runCli(cli, ['export', '--peft', trained.checkpoint, '--out', adapter, '--json']);
      expect(exported.code, exported.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'))).toMatchObject({ base_model_name_or_path: 'tiny:gpt2' });
      const imported = await runCli(cli, ['import', '--peft', adapter, '--out', join(dir, 'imported.pb'), '--json']);
      expect(imported.code, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout)).toMatchObject({ path: join(dir, 'imported.pb'), method: 'prompt_tuning' });
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
