/**
 * examples/orchestrate.ts end to end, as a user runs it: three candidates (prompt tuning × 2 settings,
 * prefix tuning) on Debian package classification with a 2-step cap and short rows, ranked by held-out
 * accuracy then loss. ~10 s wall (one worker start, three tiny runs).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

interface Outcome {
  name: string;
  accuracy: number;
  loss: number;
  checkpoint: string;
}

describe('examples/orchestrate.ts', () => {
  const out = mkdtempSync(join(tmpdir(), 'softprompt-orchestrate-test-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('trains every candidate, ranks them on held-out data and returns the best checkpoint', async () => {
    const { stdout } = await runExample('orchestrate', ['--model', 'tiny:gpt2', '--steps', '2', '--rows', '8', '--max-length', '16', '--out', out, '--json']);
    const { ranked, best } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { ranked: Outcome[]; best: Outcome };
    expect(ranked.map((o) => o.name).sort()).toEqual(['prefix_tuning n=8 lr=0.01', 'prompt_tuning n=20 lr=0.3', 'prompt_tuning n=8 lr=0.03']);
    for (const o of ranked) {
      expect(o.accuracy).toBeGreaterThanOrEqual(0);
      expect(o.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(o.loss)).toBe(true);
      expect(o.checkpoint.startsWith(out)).toBe(true);
    }
    // the best is the one with the highest held-out accuracy, ties broken by the lower held-out loss
    const expected = [...ranked].sort((a, b) => b.accuracy - a.accuracy || a.loss - b.loss)[0]!;
    expect(best).toEqual(expected);
    expect(ranked[0]).toEqual(best);
    expect(existsSync(best.checkpoint)).toBe(true);
  });
});
