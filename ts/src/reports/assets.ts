/**
 * The charting library, inlined into every report so it opens offline from file:// with no CDN:
 * uPlot (MIT, ~50 KB minified; https://github.com/leeoniya/uPlot), a dependency of this package, read
 * from its installed `dist/` once per process.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface ChartLibrary {
  /** `uPlot.iife.min.js`: defines the global `uPlot`. */
  readonly script: string;
  /** `uPlot.min.css`. */
  readonly css: string;
  readonly version: string;
}

let cached: ChartLibrary | undefined;

export function chartLibrary(): ChartLibrary {
  if (cached) return cached;
  const manifest = createRequire(import.meta.url).resolve('uplot/package.json');
  const dir = dirname(manifest);
  const version = String((JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown }).version);
  // A `</script` inside the library would end the inline element early; the minified build has none.
  const script = readFileSync(join(dir, 'dist', 'uPlot.iife.min.js'), 'utf8');
  if (/<\/script/i.test(script)) throw new Error('uplot/dist/uPlot.iife.min.js contains "</script": cannot inline it');
  cached = { script, css: readFileSync(join(dir, 'dist', 'uPlot.min.css'), 'utf8'), version };
  return cached;
}
