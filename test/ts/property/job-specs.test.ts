/**
 * Property tests of the job builders (promptTuning, prefixTuning, suffixTuning, passageTuning).
 *
 * The expectation comes from a table written here (`SITES`: each field's type and bounds, from the
 * docs and limits.ts), not from the zod schemas under test:
 * - a spec with every field inside its table entry builds;
 * - changing one field to a value outside its entry throws a ValidationError whose issues name that
 *   field's path (`job.training.batchSize: ...`);
 * - any input at all (random values, odd objects, arrays, `__proto__` keys) either builds or throws a
 *   ValidationError whose every issue is `job[.path]: problem`; never a TypeError or another error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../ts/src/core/errors.js';
import * as L from '../../../ts/src/spec/limits.js';
import { passageTuning } from '../../../ts/src/jobs/passage-tuning.js';
import { prefixTuning } from '../../../ts/src/jobs/prefix-tuning.js';
import { promptTuning } from '../../../ts/src/jobs/prompt-tuning.js';
import { suffixTuning } from '../../../ts/src/jobs/suffix-tuning.js';

const RUNS = { numRuns: 300, seed: 20240607 };

type Entry =
  | { kind: 'int'; lo: number; hi: number; required?: boolean }
  | { kind: 'num'; lo: number; hi: number; openLo?: boolean; openHi?: boolean }
  | { kind: 'enum'; choices: readonly string[]; required?: boolean }
  | { kind: 'bool' }
  | { kind: 'str'; nonEmpty: boolean; required?: boolean };

const int = (lo: number, hi: number): Entry => ({ kind: 'int', lo, hi });
const num = (lo: number, openLo = false, hi = Number.MAX_VALUE, openHi = false): Entry => ({ kind: 'num', lo, hi, openLo, openHi });
const oneOf = (...choices: string[]): Entry => ({ kind: 'enum', choices });
const bool: Entry = { kind: 'bool' };
const str = (nonEmpty = true): Entry => ({ kind: 'str', nonEmpty });
const SAFE = Number.MAX_SAFE_INTEGER;

/** Fields every builder shares, by path below the input. */
const COMMON: Record<string, Entry> = {
  'training.steps': int(1, L.MAX_STEPS),
  'training.batchSize': int(1, L.MAX_BATCH_SIZE),
  'training.gradAccumulation': int(1, L.MAX_GRAD_ACCUMULATION),
  'training.maxLength': int(1, L.MAX_SEQUENCE_LENGTH),
  'training.optimizer': oneOf('adamw', 'adafactor', 'sgd'),
  'training.lr': num(0, true),
  'training.schedule': oneOf('constant', 'linear', 'cosine'),
  'training.warmupSteps': int(0, L.MAX_STEPS),
  'training.weightDecay': num(0),
  'training.maxGradNorm': num(0),
  'training.seed': int(0, L.MAX_SEED),
  'training.dtype': oneOf('auto', 'f32', 'bf16'),
  'training.evalEvery': int(0, L.MAX_STEPS),
  'training.checkpointEvery': int(0, L.MAX_STEPS),
  'training.logEvery': int(1, L.MAX_STEPS),
  'model.tiny': { kind: 'enum', choices: ['gpt2', 'llama', 't5', 'bart', 'bert'], required: true },
  'model.seed': int(0, SAFE),
  'model.dtype': oneOf('auto', 'f32', 'bf16', 'f16'),
  'model.device': str(),
  'data.evalFraction': num(0, false, 1, true),
  'data.onBadRow': oneOf('fail', 'skip'),
  runDir: { kind: 'str', nonEmpty: true, required: true },
};

interface Builder {
  readonly name: string;
  readonly build: (input: never) => unknown;
  readonly sites: Record<string, Entry>;
}

const BUILDERS: Builder[] = [
  {
    name: 'promptTuning',
    build: promptTuning,
    sites: { numVirtualTokens: int(1, L.MAX_NUM_VIRTUAL_TOKENS), init: oneOf('vocab', 'random'), initCheckpoint: str(), seed: int(0, SAFE) },
  },
  {
    name: 'prefixTuning',
    build: prefixTuning,
    sites: { numVirtualTokens: int(1, L.MAX_NUM_VIRTUAL_TOKENS), prefixProjection: bool, projectionHiddenSize: int(1, L.MAX_HIDDEN_SIZE), seed: int(0, SAFE), init: oneOf('random') },
  },
  {
    name: 'suffixTuning',
    build: suffixTuning,
    sites: {
      numVirtualTokens: int(1, L.MAX_NUM_VIRTUAL_TOKENS),
      attention: oneOf('model', 'bidirectional'),
      pooling: oneOf('last', 'mean', 'text_mean', 'first'),
      normalize: bool,
      init: oneOf('vocab', 'random'),
      maxLength: int(1, L.MAX_SEQUENCE_LENGTH),
      'task.temperature': num(0, true),
      'task.evalBatchSize': int(1, SAFE),
    },
  },
  {
    name: 'passageTuning',
    build: passageTuning,
    sites: {
      numVirtualTokens: int(1, L.MAX_NUM_VIRTUAL_TOKENS),
      initText: str(),
      passageVectors: oneOf('pooled', 'per_token', 'none'),
      numPassageVectors: int(1, L.MAX_HIDDEN_SIZE),
      bottleneckDim: int(1, L.MAX_HIDDEN_SIZE),
      activation: oneOf('gelu', 'relu', 'tanh'),
      residual: bool,
      order: oneOf('passage_first', 'prompt_first'),
      passagePrefix: str(false),
      queryPrefix: str(false),
      prependBos: bool,
      maxPassageTokens: int(1, L.MAX_SEQUENCE_LENGTH),
      maxQueryTokens: int(1, L.MAX_SEQUENCE_LENGTH),
      'task.margin': num(0),
      'task.negatives': oneOf('both', 'hard', 'in_batch'),
    },
  },
];

function isValid(e: Entry, v: unknown): boolean {
  if (v === undefined) return !('required' in e && e.required);
  switch (e.kind) {
    case 'int':
      return Number.isSafeInteger(v) && (v as number) >= e.lo && (v as number) <= e.hi;
    case 'num': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return false;
      return (e.openLo ? v > e.lo : v >= e.lo) && (e.openHi ? v < e.hi : v <= e.hi);
    }
    case 'enum':
      return typeof v === 'string' && e.choices.includes(v);
    case 'bool':
      return typeof v === 'boolean';
    case 'str':
      return typeof v === 'string' && (!e.nonEmpty || v.length > 0);
  }
}

function validValue(e: Entry): fc.Arbitrary<unknown> {
  switch (e.kind) {
    case 'int':
      return fc.integer({ min: e.lo, max: Math.min(e.hi, 2 ** 31 - 1) });
    case 'num':
      return fc.double({ min: e.lo, max: Math.min(e.hi, 1e6), noNaN: true, minExcluded: e.openLo, maxExcluded: e.openHi });
    case 'enum':
      return fc.constantFrom(...e.choices);
    case 'bool':
      return fc.boolean();
    case 'str':
      return fc.string({ minLength: e.nonEmpty ? 1 : 0, maxLength: 8 });
  }
}

function edges(e: Entry): unknown[] {
  if (e.kind === 'int') return [e.lo - 1, e.lo, e.lo + 0.5, e.hi, e.hi + 1, e.hi * 10, -0];
  if (e.kind === 'num') return [e.lo, e.lo - 1e-9, e.hi, NaN, Infinity, -Infinity, -0];
  if (e.kind === 'str') return ['', ' '];
  return [];
}

const ANY: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(undefined, null, NaN, Infinity, -Infinity, -0, 2 ** 53, 1e300, '', '0', 'true', [], {}),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.string({ maxLength: 6 }),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
  fc.date(),
);

/** A valid input: the required fields, plus a random valid subset of the table's fields. */
function validInput(b: Builder): fc.Arbitrary<Record<string, unknown>> {
  const sites = { ...COMMON, ...b.sites };
  const chosen = fc.record(Object.fromEntries(Object.entries(sites).map(([path, e]) => [path, fc.option(validValue(e), { nil: undefined })])));
  return chosen.map((values) => {
    const input: Record<string, unknown> = { model: { tiny: 'gpt2' }, data: { train: { path: 'train.jsonl' } }, runDir: 'runs/x' };
    for (const [path, value] of Object.entries(values)) if (value !== undefined) setPath(input, path, value);
    return input;
  });
}

function show(value: unknown): string {
  return fc.stringify(value);
}

function setPath(input: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = input;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  at[keys.at(-1)!] = value;
}

/** `job`, then `.name` or `.index` or `["odd key"]` per level, then `: problem`. */
const ISSUE = /^job(\.[A-Za-z_$][\w$]*|\.\d+|\["(?:[^"\\]|\\.)*"\])*: \S/;

/** Builds `input`; returns undefined on success, the ValidationError otherwise; any other throw fails. */
function build(b: Builder, input: unknown): ValidationError | undefined {
  try {
    b.build(input as never);
    return undefined;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw new Error(`${b.name} threw ${String(error)} instead of a ValidationError`, { cause: error });
    expect(error.issues.length).toBeGreaterThan(0);
    for (const issue of error.issues) expect(issue).toMatch(ISSUE);
    return error;
  }
}

describe.each(BUILDERS.map((b) => [b.name, b] as const))('%s', (_, b) => {
  const sites = { ...COMMON, ...b.sites };

  it('builds every spec whose fields are inside their bounds', () => {
    fc.assert(
      fc.property(validInput(b), (input) => {
        const error = build(b, input);
        expect(error?.message).toBeUndefined();
      }),
      RUNS,
    );
  });

  it('names the field when one field is outside its bounds', () => {
    const paths = Object.keys(sites);
    fc.assert(
      fc.property(validInput(b), fc.constantFrom(...paths), fc.oneof(ANY, fc.constantFrom(...paths.flatMap((p) => edges(sites[p]!)))), (base, path, value) => {
        const entry = sites[path]!;
        const input = structuredClone(base); // fast-check replays generated values: never mutate them
        // steps and epochs are exclusive: the base may hold neither when steps is changed
        if (path === 'training.steps') delete (input['training'] as Record<string, unknown> | undefined)?.['epochs'];
        setPath(input, path, value);
        const error = build(b, input);
        if (isValid(entry, value)) {
          expect(error?.message).toBeUndefined();
        } else {
          expect(error, `${path} = ${show(value)} was accepted`).toBeDefined();
          expect(error!.issues.some((i) => i.startsWith(`job.${path}: `)), error!.message).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('answers any input with a spec or a ValidationError naming paths', () => {
    const keys = [...new Set(Object.keys(sites).map((p) => p.split('.')[0]!)), 'task', 'eval', '__proto__', 'constructor', 'toString'];
    const garbage = fc.oneof(
      ANY,
      fc.dictionary(fc.constantFrom(...keys), fc.oneof(ANY, fc.dictionary(fc.string({ maxLength: 4 }), ANY, { maxKeys: 3 })), { maxKeys: 6 }),
      fc.anything({ withNullPrototype: true, withObjectString: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, maxDepth: 3 }),
    );
    fc.assert(
      fc.property(validInput(b), garbage, fc.boolean(), (input, junk, merge) => {
        build(b, merge && typeof junk === 'object' && junk !== null ? { ...input, ...junk } : junk);
      }),
      RUNS,
    );
  });
});

describe('limits', () => {
  it.each([
    ['training.batchSize', L.MAX_BATCH_SIZE],
    ['training.steps', L.MAX_STEPS],
    ['training.maxLength', L.MAX_SEQUENCE_LENGTH],
    ['numVirtualTokens', L.MAX_NUM_VIRTUAL_TOKENS],
  ])('%s over %d names the limit and the value', (path, max) => {
    const input: Record<string, unknown> = { model: { tiny: 'gpt2' }, data: { train: { path: 'x.jsonl' } }, runDir: 'r' };
    setPath(input, path, max + 1);
    expect(() => promptTuning(input as never)).toThrow(`job.${path}: must be <= ${max}, got ${max + 1}`);
  });

  it('names an own __proto__ key as an unknown field', () => {
    const input = JSON.parse('{"model": {"tiny": "gpt2"}, "data": {"train": {"path": "x"}}, "runDir": "r", "__proto__": {"x": 1}}');
    expect(() => promptTuning(input)).toThrow(/job\.__proto__: unknown field/);
  });
});
