/**
 * One example per method: the builder, `sp.train`, and the inference call that uses the result.
 * The README's "Methods" section is pasted from the `#region` blocks below, and
 * test/ts/examples/examples.test.ts runs each function and checks that the README still shows the
 * same code. In your own code import from 'softprompt' instead of '../ts/src/index.js'.
 *
 * Each function takes the base model and a folder for runs; with a tiny model and `steps: 2` each
 * runs in about a second on a CPU.
 */
import { join } from 'node:path';
import {
  type ModelSpec,
  type Softprompt,
  pTuning,
  passageTuning,
  prefixTuning,
  promptTuning,
  suffixTuning,
} from '../ts/src/index.js';

/** Prompt tuning (Lester et al. 2021): a few vectors before the input; here a 3-way classifier. */
export async function promptTuningExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region prompt
  const rows = [
    { input: 'The update broke my wifi.', label: 'bug' },
    { input: 'Please add a dark theme.', label: 'feature' },
    { input: 'How do I change the port?', label: 'question' },
  ];
  const spec = promptTuning({
    model, numVirtualTokens: 20,
    task: { type: 'classification', labels: ['bug', 'feature', 'question'] },
    data: { train: { rows } }, training: { steps, lr: 0.3 }, runDir: join(runs, 'prompt'),
  });
  const { checkpoint } = await sp.train(spec).result();
  await sp.prompts.load('triage', checkpoint);
  const { predictions } = await sp.classify({ prompt: 'triage', inputs: ['It crashes on start.'], labels: ['bug', 'feature', 'question'] });
  // #endregion
  return predictions;
}

/** Prefix tuning (Li & Liang 2021): key/value vectors at every layer; here text generation. */
export async function prefixTuningExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region prefix
  const rows = [
    { input: 'Summarise: the build failed on arm64 because of a missing header.', target: 'arm64 build: missing header' },
    { input: 'Summarise: tests time out when the network is down.', target: 'tests: network timeouts' },
  ];
  const spec = prefixTuning({
    model, numVirtualTokens: 10, prefixProjection: true,
    data: { train: { rows } }, training: { steps, lr: 1e-2 }, runDir: join(runs, 'prefix'),
  });
  const { checkpoint } = await sp.train(spec).result();
  await sp.prompts.load('summary', checkpoint);
  const { outputs } = await sp.generate({ prompt: 'summary', inputs: ['Summarise: the docs link is dead.'], maxNewTokens: 12 }).result();
  // #endregion
  return outputs;
}

/** P-tuning (Liu et al. 2021): prompt-tuning vectors produced by a small trained encoder; here a yes/no classifier. */
export async function pTuningExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region p-tuning
  const rows = [
    { input: 'Is arm64 supported? Yes, since 2.0.', label: 'yes' },
    { input: 'Does it run on Windows 7? No.', label: 'no' },
  ];
  const spec = pTuning({
    model, numVirtualTokens: 20, encoder: 'mlp',
    task: { type: 'classification', labels: ['yes', 'no'] },
    data: { train: { rows } }, training: { steps, lr: 1e-2 }, runDir: join(runs, 'p-tuning'),
  });
  const { checkpoint } = await sp.train(spec).result();
  await sp.prompts.load('answer', checkpoint);
  const { predictions } = await sp.classify({ prompt: 'answer', inputs: ['Is Python 3.11 supported? Yes.'], labels: ['yes', 'no'] });
  // #endregion
  return predictions;
}

/** Suffix tuning (SPT-style embeddings): vectors after the text, pooled into a sentence embedding. */
export async function suffixTuningExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region suffix
  const rows = [
    { query: 'reset a forgotten password', positive: 'Use passwd to change a user password.' },
    { query: 'list open ports', positive: 'ss -tlnp shows listening TCP sockets.' },
  ];
  const spec = suffixTuning({
    model, numVirtualTokens: 8, pooling: 'last',
    data: { train: { rows } }, training: { steps, batchSize: 2 }, runDir: join(runs, 'suffix'),
  });
  const { checkpoint } = await sp.train(spec).result();
  await sp.prompts.load('search', checkpoint);
  const vectors = await sp.embed({ prompt: 'search', texts: ['change my password', 'which ports are open'] });
  const similarity = vectors.cosine(0, 1); // vectors: 2 × dim, Float32Array-backed
  // #endregion
  return { dim: vectors.dim, rows: vectors.rows, similarity };
}

/** Passage tuning: a prompt plus per-passage vectors that score passages by query likelihood. */
export async function passageTuningExample(sp: Softprompt, model: ModelSpec, runs: string, steps = 200) {
  // #region passage
  const rows = [
    { query: 'how to mount a usb drive', positive: 'mount /dev/sdb1 /mnt attaches the drive.', negatives: ['apt install vim installs vim.'] },
    { query: 'install a package', positive: 'apt install NAME installs a package.', negatives: ['umount /mnt detaches it.'] },
  ];
  const spec = passageTuning({
    model, numVirtualTokens: 10, numPassageVectors: 2,
    data: { train: { rows } }, training: { steps, batchSize: 2 }, runDir: join(runs, 'passage'),
  });
  const { checkpoint } = await sp.train(spec).result();
  await sp.prompts.load('ranker', checkpoint);
  const { passages } = await sp.rerank({ prompt: 'ranker', query: 'mount usb', passages: ['apt install vim', 'mount /dev/sdb1 /mnt'] });
  // passages: best first, each { index, passage, logLikelihood, meanLogLikelihood }
  // #endregion
  return passages;
}
