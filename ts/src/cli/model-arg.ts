/**
 * `--model` on the command line: a hub id or local path (`gpt2`, `./my-model`), a tiny offline model
 * (`tiny:gpt2`), an embedded default (`embedded:smollm2`), or a full model spec as JSON (`'{"tiny":"gpt2","overrides":{"n_layer":1}}'`).
 * The SDK validates the result (`modelSpecSchema`); `--device` sets its device.
 */
import { resolve } from 'node:path';
import type { ModelSpec } from '../spec/model-spec.js';
import type { Args } from './args.js';
import { UsageError } from './exit-codes.js';

export const MODEL_OPTIONS = {
  model: { type: 'string', arg: 'spec', help: "base model: a hub id or path (gpt2), tiny:<family> (tiny:gpt2), embedded:smollm2|minilm, or a JSON model spec" },
  device: { type: 'string', arg: 'device', help: "cpu, cuda, cuda:1, ... Default auto (CUDA when the worker sees a GPU)" },
} as const;

/** The model spec from `--model` / `--device`, or undefined when `--model` was not given. */
export function modelFromArgs(args: Args): ModelSpec | undefined {
  const raw = args.string('model');
  const device = args.string('device');
  if (raw === undefined) {
    if (device !== undefined) throw new UsageError('--device: give --model too');
    return undefined;
  }
  const spec = parseModel(raw);
  return device === undefined ? spec : { ...spec, device };
}

export function parseModel(raw: string): ModelSpec {
  const text = raw.trim();
  if (text.startsWith('{')) {
    try {
      return JSON.parse(text) as ModelSpec;
    } catch (error) {
      throw new UsageError(`--model: not valid JSON (${(error as Error).message})`);
    }
  }
  if (text.startsWith('tiny:')) return { tiny: text.slice('tiny:'.length) } as ModelSpec;
  if (text.startsWith('embedded:')) return { embedded: text.slice('embedded:'.length) } as ModelSpec;
  if (text === '') throw new UsageError('--model: must not be empty');
  // A relative local path is made absolute: the worker's working directory may differ.
  return { nameOrPath: text.startsWith('.') ? resolve(text) : text };
}
