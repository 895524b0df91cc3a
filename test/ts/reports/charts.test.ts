/** Report pieces without a browser: the default title names the model; evaluations at only step 0 and the end are points, not a line. */
import { describe, expect, it } from 'vitest';
import { chartSpecs } from '../../../ts/src/reports/charts.js';
import { defaultTitle } from '../../../ts/src/reports/render.js';
import type { RunData } from '../../../ts/src/reports/run-data.js';

function run(job: Record<string, unknown>, evalSteps: number[]): RunData {
  return {
    runDir: '/r',
    job,
    starts: [],
    steps: [1, 2, 3, 4].map((step) => ({ step, loss: 2 - step / 4, lr: 0.1, gradNorm: 1, tokensPerS: 100, memoryBytes: 0, time: step })),
    evals: evalSteps.map((step) => ({ step, metrics: { loss: 2 - step / 8, accuracy: step / 8 }, time: step })),
    checkpoints: [],
    status: 'completed',
    unreadableLines: 0,
  } as unknown as RunData;
}

describe('report charts and title', () => {
  it('names the model in the default title: hub, embedded, tiny', () => {
    expect(defaultTitle(run({ method: 'prompt_tuning', model: { name_or_path: 'gpt2' } }, []))).toBe('prompt_tuning · gpt2');
    expect(defaultTitle(run({ method: 'prompt_tuning', model: { embedded: 'smollm2' } }, []))).toBe('prompt_tuning · smollm2 (embedded)');
    expect(defaultTitle(run({ method: 'suffix_tuning', model: { tiny: 'bert' } }, []))).toBe('suffix_tuning · bert (tiny)');
  });

  it('draws step 0 and the final evaluation as two points; three or more evaluations as a line', () => {
    const pointsOnly = (evals: number[]) =>
      chartSpecs(run({ method: 'prompt_tuning' }, evals)).flatMap((c) => c.series.filter((s) => s.points).map((s) => [c.id, s.label, s.pointsOnly]));
    expect(pointsOnly([0, 4])).toEqual([['loss', 'eval loss', true], ['metrics', 'accuracy', true]]);
    expect(pointsOnly([0, 2, 4])).toEqual([['loss', 'eval loss', false], ['metrics', 'accuracy', false]]);
  });
});
