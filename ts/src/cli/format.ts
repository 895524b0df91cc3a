/** Small formatting helpers for human output. */

/** `{ loss: 1.23456, 'ndcg@10': 0.5 }` → `loss 1.2346, ndcg@10 0.5000`. */
export function formatMetrics(metrics: Readonly<Record<string, number>>): string {
  const entries = Object.entries(metrics);
  if (entries.length === 0) return '(none)';
  return entries.map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(4) : String(v)}`).join(', ');
}

/** Two-column `key  value` lines, keys padded to the longest. */
export function table(rows: readonly (readonly [string, string])[], indent = '  '): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${indent}${k.padEnd(width)}${v}`).join('\n');
}

/** A few leading numbers of a vector: `[0.0123, -0.4410, 0.0871, …]`. */
export function preview(values: ArrayLike<number>, n = 4): string {
  const head = Array.from({ length: Math.min(n, values.length) }, (_, i) => values[i]!.toFixed(4));
  return `[${head.join(', ')}${values.length > n ? ', …' : ''}]`;
}
