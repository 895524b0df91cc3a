/**
 * zod parsing that throws the SDK's {@link ValidationError}, naming fields from a root
 * (`options.startTimeoutMs: expected number, received string`).
 */
import type { z } from 'zod';
import { ValidationError } from '../core/errors.js';

/** Parses `value` with `schema`, or throws a ValidationError whose issues are `root.path: problem`. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw ValidationError.fromZod(parsed.error, root);
  return parsed.data;
}
