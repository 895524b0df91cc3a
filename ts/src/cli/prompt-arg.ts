/**
 * Checkpoint arguments (`--prompt ckpt.pb`) and paths the worker opens. Paths are made absolute here:
 * the worker may run in another folder (the warm worker, `--connect`), so it never sees a relative one.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Softprompt } from '../client.js';
import type { ModelSpec } from '../spec/model-spec.js';
import type { Args } from './args.js';

/** The name the CLI loads a `--prompt` checkpoint under, for the commands that need a loaded prompt. */
export const PROMPT_NAME = 'cli';

/** `--<name>` as an absolute path, or undefined when not given. */
export function pathArg(args: Args, name: string): string | undefined {
  const raw = args.string(name);
  return raw === undefined ? undefined : resolve(raw);
}

/**
 * Runs `use` with the checkpoint loaded as {@link PROMPT_NAME} (on `model`, else the checkpoint's own
 * model), and unloads it afterwards, so a long-lived worker does not keep every command's prompt.
 */
export async function withPrompt<T>(sp: Softprompt, checkpoint: string | undefined, model: ModelSpec | undefined, signal: AbortSignal, use: () => Promise<T>): Promise<T> {
  if (checkpoint === undefined) return use();
  await sp.prompts.load(PROMPT_NAME, checkpoint, { ...(model ? { model } : {}), signal });
  try {
    return await use();
  } finally {
    await sp.prompts.unload(PROMPT_NAME).catch(() => {});
  }
}

/**
 * The labels of the classification job that wrote `checkpoint`, read from its run folder's `job.json`
 * (`<runDir>/checkpoints/step-N.pb` → `<runDir>/job.json`); undefined when there is none.
 */
export function jobLabels(checkpoint: string): string[] | undefined {
  try {
    const job = JSON.parse(readFileSync(join(dirname(dirname(checkpoint)), 'job.json'), 'utf8')) as {
      task?: unknown;
      task_options?: { labels?: unknown };
    };
    const labels = job.task_options?.labels;
    if (job.task === 'classification' && Array.isArray(labels) && labels.every((l) => typeof l === 'string')) return labels as string[];
  } catch {
    // no job.json beside it: the labels must be given
  }
  return undefined;
}
