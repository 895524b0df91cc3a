/** Rows for the data commands: from `--text` values, else JSONL from the positional file or stdin. */
import type { z } from 'zod';
import type { Args } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { type Located, openInput, readRows } from '../jsonl.js';

export async function* textRows<T>(args: Args, schema: z.ZodType<T>, fromText: (text: string) => T): AsyncGenerator<Located<T>> {
  const texts = args.list('text');
  if (texts.length > 0) {
    if (args.positionals.length > 0) throw new UsageError('give --text or an input file, not both');
    for (const [i, text] of texts.entries()) yield { where: `--text[${i}]`, row: fromText(text) };
    return;
  }
  yield* readRows(openInput(args.positionals[0]), schema);
}
