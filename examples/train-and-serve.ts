/**
 * One worker trains and serves at once: while a job trains, the same worker answers other calls between
 * the job's steps, and `sp.status()` shows what it holds and does. The README's "One worker trains and
 * serves at once" section is pasted from the `#region` below, and test/ts/integration/scheduling.test.ts
 * runs this function and checks that the README still shows the same code. In your own code import
 * from 'softprompt' instead of '../ts/src/index.js'.
 */
import { join } from 'node:path';
import { type ModelSpec, type Softprompt, promptTuning } from '../ts/src/index.js';

export async function trainAndServeExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region train-and-serve
  const rows = [
    { input: 'The update broke my wifi.', target: 'bug' },
    { input: 'Please add a dark theme.', target: 'feature' },
  ];
  const job = sp.train(promptTuning({ model, data: { train: { rows } }, training: { steps }, runDir: join(runs, 'serve') }));
  let vectors, status;
  for await (const event of job.events()) {
    if (event.type === 'started') {
      // the same worker answers other calls between the job's steps
      vectors = await sp.embed({ model, texts: ['answered while a job trains'] });
      status = await sp.status(); // loaded models, jobs with step and loss, queue depths
    }
  }
  const { checkpoint } = await job.result();
  // #endregion
  return { rows: vectors!.rows, status: status!, checkpoint };
}
