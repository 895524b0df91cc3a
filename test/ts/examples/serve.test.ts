/**
 * examples/serve.ts as a user runs it: untrained suffix- and passage-tuning checkpoints (written by
 * fixtures/write_prompts.py, the worker's own checkpoints.py) served on 127.0.0.1 port 0; both
 * endpoints answer with the right shapes, bad requests get 400 naming the field, and SIGTERM closes
 * the SDK and exits 0. ~8 s wall (one worker start).
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtures, venvPython } from '../helpers.js';
import { root, startExample } from './run-example.js';

describe('examples/serve.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'softprompt-serve-test-'));
  let child: ChildProcess;
  let base: string;
  let stderr = '';

  beforeAll(async () => {
    const { stdout } = await promisify(execFile)(venvPython, [join(fixtures, 'write_prompts.py'), dir, '{"tiny": "gpt2"}'], {
      env: { ...process.env, PYTHONPATH: join(root, 'python'), OMP_NUM_THREADS: '1' },
    });
    const paths = JSON.parse(stdout) as Record<'sx' | 'pa', string>;
    child = startExample('serve', ['--embed', paths.sx, '--rerank', paths.pa, '--port', '0']);
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_, fail) => child.once('exit', (code) => fail(new Error(`serve exited ${code}: ${stderr}`))));
    const listening = new Promise<string>((done) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) done(m[1]!);
      });
    });
    base = await Promise.race([listening, exited]);
  });
  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
  };

  it('POST /embed answers one row per text', async () => {
    const { status, type, body } = await post('/embed', { texts: ['mount a usb drive', 'list open ports', 'x'] });
    expect(status).toBe(200);
    expect(type).toBe('application/json');
    const embeddings = body['embeddings'] as number[][];
    expect(embeddings).toHaveLength(3);
    for (const row of embeddings) expect(row).toHaveLength(body['dim'] as number);
    expect(body['dim']).toBeGreaterThan(0);
  });

  it('POST /rerank answers passages best first, cut to topK', async () => {
    const passages = ['apt install vim', 'mount /dev/sdb1 /mnt', 'ss -tlnp'];
    const all = await post('/rerank', { query: 'mount usb', passages });
    expect(all.status).toBe(200);
    const ranked = all.body['passages'] as { index: number; passage: string; score: number }[];
    expect(ranked.map((p) => p.index).sort()).toEqual([0, 1, 2]);
    for (const p of ranked) expect(p.passage).toBe(passages[p.index]);
    expect(ranked.map((p) => p.score)).toEqual([...ranked.map((p) => p.score)].sort((a, b) => b - a));
    const top = await post('/rerank', { query: 'mount usb', passages, topK: 1 });
    expect(top.body['passages']).toEqual([ranked[0]]);
  });

  it('answers bad requests with 400 naming the field, and unknown routes with 404/405', async () => {
    expect(await post('/embed', { texts: 'not a list' })).toMatchObject({ status: 400, body: { field: 'texts', error: expect.stringContaining('texts:') } });
    expect(await post('/embed', { texts: ['ok', 3] })).toMatchObject({ status: 400, body: { field: 'texts[1]' } });
    expect(await post('/rerank', { passages: ['a'] })).toMatchObject({ status: 400, body: { field: 'query' } });
    expect(await post('/rerank', { query: 'q', passages: ['a'], topK: 0 })).toMatchObject({ status: 400, body: { field: 'topK' } });
    expect(await post('/embed', '{not json')).toMatchObject({ status: 400, body: { field: 'body' } });
    expect((await post('/nope', {})).status).toBe(404);
    expect((await fetch(`${base}/embed`)).status).toBe(405);
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ ok: true, prompts: ['embed', 'rerank'] });
  });

  it('SIGTERM closes the SDK and exits 0', async () => {
    const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(stderr).toContain('SIGTERM: closing');
  });
});
