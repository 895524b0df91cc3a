/**
 * Escaping and number formatting for the report. Every string that comes from a run (job.json, event
 * fields, paths, metric names) reaches the page through {@link esc} (text and attribute values) or
 * {@link jsonForScript} (the data block the charts read); nothing is inserted raw.
 */
import { createHash } from 'node:crypto';

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or a quoted attribute value, safe in HTML: `& < > " '` become entities. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/**
 * JSON for a `<script type="application/json">` block: `<`, `>`, `&` and the JavaScript line
 * separators are `\u` escapes, so no string in the data can close the element (`</script>`) or open a
 * comment (`<!--`). `JSON.parse` of the block's text gives the value back unchanged. NaN and ±Infinity
 * (not JSON) become `null`, as `JSON.stringify` does.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A CSP source for an inline `<script>` or `<style>` with exactly this text. */
export function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** Absent or not a finite number. */
export function missing(n: number | null | undefined): n is null | undefined {
  return n === null || n === undefined || !Number.isFinite(n);
}

/** A metric or loss: 4 significant digits, exponent form for very small or large values; `—` when missing. */
export function fmtNumber(n: number | null | undefined): string {
  if (missing(n)) return '—';
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs >= 1e6 || abs < 1e-3) return n.toExponential(2);
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(4)));
}

/** A count with thousands separators: `1,234,567`. */
export function fmtCount(n: number | null | undefined): string {
  return missing(n) ? '—' : Math.round(n).toLocaleString('en-US');
}

/** `0.0123` → `1.23%` (3 significant digits). */
export function fmtPercent(fraction: number | null | undefined): string {
  return missing(fraction) ? '—' : `${Number((fraction * 100).toPrecision(3))}%`;
}

/** Bytes in binary units: `1.5 GiB`. */
export function fmtBytes(n: number | null | undefined): string {
  if (missing(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Seconds as `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`. */
export function fmtDuration(seconds: number | null | undefined): string {
  if (missing(seconds)) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${Number(seconds.toPrecision(3))} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Unix seconds → `2026-01-31 12:34:56 UTC`. */
export function fmtTime(unixSeconds: number | null | undefined): string {
  if (missing(unixSeconds)) return '—';
  return `${new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
