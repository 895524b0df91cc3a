/**
 * The README and examples/ run on Node 20 (the declared minimum) as written under `npx vite-node`, whose
 * esbuild leaves `await using` as is: Node 20 cannot parse it. So no code block of the README and no
 * example declares `await using` (the client docs may mention it: tsc compiles it, Node 24 runs it).
 * The examples themselves run under vite-node in their own tests; this one covers the README's blocks
 * by actually parsing them with Node 20's parser.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { root } from './run-example.js';

/** The ```ts blocks of the README. */
function readmeBlocks(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe('Node 20', () => {
  it('no README block or example declares `await using`', () => {
    const sources = [...readmeBlocks(), ...readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(root, 'examples', f), 'utf8'))];
    for (const source of sources) {
      const code = source.split('\n').filter((line) => !line.trim().startsWith('//') && !line.trim().startsWith('*'));
      expect(code.filter((line) => /\bawait using\s+\w+\s*=/.test(line))).toEqual([]);
    }
  });

  it("every README block parses with Node 20's own parser once types are stripped (as vite-node does)", () => {
    for (const block of readmeBlocks()) {
      // vite-node strips types with esbuild and keeps newer syntax; wrap the block as an async body.
      const js = transformSync(`async function block() {\n${block}\n}`, { loader: 'ts', target: 'esnext' }).code;
      expect(() => new Function(js)).not.toThrow();
    }
  });
});
