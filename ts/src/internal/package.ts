/**
 * This package's own location and version, found from the running module (works from ts/src in
 * development, ts/dist when built, and node_modules/softprompt when installed).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { root: string; version: string } | undefined;

function find(): { root: string; version: string } {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'softprompt') return (cached = { root: dir, version: String(pkg.version) });
      } catch {
        // not ours; keep climbing
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('softprompt: cannot find the package root (a package.json named "softprompt")');
    dir = parent;
  }
}

/** The package root: the nearest folder above this module whose package.json is named `softprompt`. */
export function packageRoot(): string {
  return find().root;
}

/** This SDK's version, from package.json. */
export function packageVersion(): string {
  return find().version;
}
