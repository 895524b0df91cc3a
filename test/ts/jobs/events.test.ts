import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../ts/src/core/errors.js';
import { decodeTrainingEvent, decodeTrainingResult } from '../../../ts/src/jobs/events.js';

const summary = {
  status: 'cancelled', steps: 2, total_steps: 6, final_loss: Number.NaN, metrics: {}, tokens: 40, epochs: 0.5,
  elapsed_s: 0.1, checkpoint: '/r/checkpoints/step-00000002.pb',
};

describe('training events', () => {
  it('turns every worker event into its camelCase TS form', () => {
    expect(decodeTrainingEvent({ event: 'data', train_rows: 6, eval_rows: 2, skipped: 1, skipped_rows: [{ where: 'f:3', error: 'bad' }] })).toEqual({
      type: 'data', trainRows: 6, evalRows: 2, skipped: 1, skippedRows: [{ where: 'f:3', error: 'bad' }],
    });
    expect(
      decodeTrainingEvent({
        event: 'started', trainable_params: 256, trainable_fraction: 0.001, total_params: 1000, device: 'cpu', dtype: 'f32',
        total_steps: 4, start_step: 0,
      }),
    ).toEqual({ type: 'started', trainableParams: 256, trainableFraction: 0.001, totalParams: 1000, device: 'cpu', dtype: 'f32', totalSteps: 4, startStep: 0 });
    expect(decodeTrainingEvent({ event: 'step', step: 2, loss: 1.5, lr: 0.03, grad_norm: 0.2, tokens_per_s: 100, memory_bytes: 1 << 30 })).toEqual({
      type: 'step', step: 2, loss: 1.5, lr: 0.03, gradNorm: 0.2, tokensPerS: 100, memoryBytes: 1 << 30,
    });
    expect(decodeTrainingEvent({ event: 'eval', step: 4, metrics: { token_accuracy: 0.5, 'ndcg@10': 0.7 } })).toEqual({
      type: 'eval', step: 4, metrics: { token_accuracy: 0.5, 'ndcg@10': 0.7 },
    });
    expect(decodeTrainingEvent({ event: 'checkpoint', step: 4, path: '/r/c.pb' })).toEqual({ type: 'checkpoint', step: 4, path: '/r/c.pb' });
    expect(decodeTrainingEvent({ event: 'best', step: 0, metric: 'ndcg@10', value: 0.5, checkpoint: '/r/checkpoints/best.pb' })).toEqual({
      type: 'best', step: 0, metric: 'ndcg@10', value: 0.5, checkpoint: '/r/checkpoints/best.pb',
    });
    const best = { step: 0, metrics: { 'ndcg@10': 0.5, mean_loss: 1 }, value: 0.5, checkpoint: '/r/checkpoints/best.pb' };
    expect(
      decodeTrainingEvent({ event: 'selection', by: 'ndcg@10', best, beat_baseline: false, stopped_early_at: 6, message: 'no step beat it' }),
    ).toEqual({ type: 'selection', by: 'ndcg@10', best, beatBaseline: false, stoppedEarlyAt: 6, message: 'no step beat it' }); // metric names kept
    const done = decodeTrainingEvent({ event: 'done', summary });
    expect(done).toMatchObject({ type: 'done', summary: { status: 'cancelled', totalSteps: 6, elapsedS: 0.1 } });
  });

  it('skips unknown event kinds and refuses malformed known ones', () => {
    expect(decodeTrainingEvent({ event: 'heartbeat' })).toBeUndefined();
    expect(() => decodeTrainingEvent({ event: 'step', step: 'two' })).toThrow(ProtocolError);
  });

  it('decodes the final reply (NaN final loss included)', () => {
    const result = decodeTrainingResult({ status: 'cancelled', summary, checkpoint: summary.checkpoint });
    expect(result.status).toBe('cancelled');
    expect(result.checkpoint).toBe(summary.checkpoint);
    expect(result.summary.finalLoss).toBeNaN();
    expect(() => decodeTrainingResult({ status: 'odd', summary, checkpoint: 'x' })).toThrow(/train reply/);
    expect(result.best).toBeNull(); // a worker without model selection
    const best = { step: 4, metrics: { accuracy: 1 }, value: 1, checkpoint: '/r/checkpoints/best.pb' };
    expect(decodeTrainingResult({ status: 'completed', summary: { ...summary, best }, checkpoint: 'x', best }).best).toEqual(best);
  });
});
