/**
 * zod pieces the job builders share: numbers with the messages the docs promise (`must be > 0`),
 * a dispatcher that picks a schema by the value's shape (so errors name the real field instead of
 * zod's "invalid union"), and deep freezing of a built spec.
 */
import { z } from 'zod';

/** An integer ≥ 1. */
export const positiveInt = () => z.number().int({ error: 'must be an integer' }).gt(0, { error: 'must be > 0' });
/** An integer ≥ 0. */
export const nonNegativeInt = () => z.number().int({ error: 'must be an integer' }).gte(0, { error: 'must be >= 0' });
/** A finite number > 0. */
export const positiveNumber = () => z.number().gt(0, { error: 'must be > 0' });
/** A finite number ≥ 0. */
export const nonNegativeNumber = () => z.number().gte(0, { error: 'must be >= 0' });
/**
 * Any number, NaN and ±Infinity included (zod's `number()` refuses them): a float the worker computed and
 * sends in a reply or an event (`nan` in its schema), such as a metric of a run that went wrong.
 */
export const anyNumber = () => z.custom<number>((v) => typeof v === 'number', { error: 'expected a number' });
/** The `.max()` error of a limit (limits.ts): names the limit and the value, e.g. `must be <= 4096, got 5000`. */
export const limit = (max: number) => ({ error: (issue: { input?: unknown }) => `must be <= ${max}, got ${String(issue.input)}` });
/**
 * `true` when `A` and `B` accept the same values (each assignable to the other), `readonly` aside at any
 * depth (built specs are deep-frozen). A hand-documented options type is checked against the type
 * generated from the worker's schema with `true satisfies Same<Documented, Generated>`: the build fails
 * when the two drift apart.
 */
export type Same<A, B> = [Frozen<A>] extends [Frozen<B>] ? ([Frozen<B>] extends [Frozen<A>] ? true : false) : false;
/** `T` read-only at every depth, each object tagged with its key set, so an optional field one side lacks differs. */
type Frozen<T> = T extends string | number | boolean | bigint | symbol | null | undefined
  ? T
  : T extends readonly (infer U)[]
    ? readonly Frozen<U>[]
    : T extends object
      ? { readonly [K in keyof T]: Frozen<T[K]> } & { readonly [keys]: Keys<T> }
      : T;
declare const keys: unique symbol;
/** Each key of `T` mapped to its own name, required: two such maps are assignable both ways iff the key sets are equal. */
type Keys<T> = { readonly [K in keyof T]-?: K };

/** A non-empty string. */
export const nonEmpty = () => z.string().min(1, { error: 'must not be empty' });

/** `initText` is required when `init` is `'text'` and refused otherwise: the rule of every method with a text init. */
export function checkInitText(c: { init: string; initText?: string | undefined }, ctx: z.RefinementCtx): void {
  if (c.init === 'text' && c.initText === undefined) ctx.addIssue({ code: 'custom', path: ['initText'], message: "required when init is 'text'" });
  if (c.init !== 'text' && c.initText !== undefined) ctx.addIssue({ code: 'custom', path: ['initText'], message: "only used when init is 'text'" });
}

/**
 * A schema that validates with `pick(value)`: e.g. `{ tiny }` specs with the tiny schema, others with
 * the hub schema. Issues keep their field paths.
 */
export function dispatch<T>(pick: (value: unknown) => z.ZodType<T>): z.ZodType<T> {
  return z.unknown().optional().transform((value, ctx) => {
    const parsed = pick(value).safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.issues.push({ ...issue, input: value } as (typeof ctx.issues)[number]);
    return z.NEVER;
  }) as unknown as z.ZodType<T>;
}

/** True for `{...}` objects (not arrays, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Freezes `value` and every plain object/array below it, except the values under keys in `skip`. */
export function deepFreeze<T>(value: T, skip: ReadonlySet<string> = new Set()): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  for (const [key, v] of Object.entries(value)) if (!skip.has(key)) deepFreeze(v, skip);
  return Object.freeze(value);
}

/**
 * The `task` field of a method that trains one task: absent, its name, or `{ type?: name, ...options }`
 * (`options` gives `type` the default `name`); the output is always the object, defaults filled.
 */
export function singleTask<Out>(name: string, options: z.ZodType<Out>): z.ZodType<Out> {
  const byName = z.literal(name, { error: `expected '${name}' or { type: '${name}', ... }` });
  return dispatch<Out>((v) => {
    if (v === undefined) return z.undefined().transform(() => options.parse({}));
    if (typeof v === 'string') return byName.transform(() => options.parse({}));
    return options;
  });
}
