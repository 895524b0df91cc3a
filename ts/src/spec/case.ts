/**
 * The one place training-job names change case: camelCase on the TS side, snake_case on the wire
 * (`numVirtualTokens` ⇄ `num_virtual_tokens`). Maps keyed by data (metric names, tensor names, user
 * rows) are never translated: callers name them in `keep`.
 */

/** `numVirtualTokens` → `num_virtual_tokens`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `num_virtual_tokens` → `numVirtualTokens`. */
export function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function translate(value: unknown, rename: (k: string) => string, keep: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => translate(v, rename, keep));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue; // left out: the worker applies its default
    const name = rename(key);
    out[name] = keep.has(key) || keep.has(name) ? v : translate(v, rename, keep);
  }
  return out;
}

/** Deep snake_case copy of `value` (undefined fields dropped); keys in `keep` hold data, copied as is. */
export function toSnake(value: unknown, keep: Iterable<string> = []): unknown {
  return translate(value, snakeCase, new Set(keep));
}

/** Deep camelCase copy of `value`; the values of keys in `keep` (e.g. `metrics`) are copied as is. */
export function toCamel(value: unknown, keep: Iterable<string> = []): unknown {
  return translate(value, camelCase, new Set(keep));
}

/** `num_virtual_tokens` → `numVirtualTokens`, as {@link camelCase} spells it, at the type level. */
export type CamelName<S extends string> = S extends `${infer Head}_${infer C}${infer Tail}` ? `${Head}${Uppercase<C>}${CamelName<Tail>}` : S;

/**
 * The type {@link toCamel} makes of a `T`: its keys camelCased at every depth, except below the keys in
 * `Keep` (data maps, named as the wire names them). A reply's documented TS type is checked against
 * `Camel<GeneratedReply>` with `Same<>` (spec/schema.ts).
 */
export type Camel<T, Keep extends string = never> = T extends string | number | boolean | bigint | symbol | null | undefined
  ? T
  : T extends readonly (infer U)[]
    ? Camel<U, Keep>[]
    : T extends object
      ? { [K in keyof T as K extends string ? CamelName<K> : K]: K extends Keep ? T[K] : Camel<T[K], Keep> }
      : T;

/** {@link toCamel}, typed: a decoded reply (snake_case, as its generated schema parsed it) in the SDK's names. */
export function camelized<T, Keep extends string = never>(value: T, keep: readonly Keep[] = []): Camel<T, Keep> {
  return toCamel(value, keep) as Camel<T, Keep>;
}
