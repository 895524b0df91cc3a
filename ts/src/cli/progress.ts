/**
 * The training progress bar on stderr:
 *
 *     step 40/100 [########------------]  40% | loss 2.3141 | lr 3.00e-2 | 1.2k tok/s | ETA 0:45
 *
 * On a terminal it is redrawn in place, at most ten times a second (and kept below the lines other
 * output prints); elsewhere (a log file, CI) it prints one line every `every` steps and at the last.
 */
import type { StepEvent } from '../jobs/events.js';
import type { Output, StatusLine } from './output.js';

export interface ProgressOptions {
  /** Redraw in place (a terminal). */
  readonly tty: boolean;
  /** Terminal width; the bar shrinks to fit. Default 100. */
  readonly columns?: number;
  /** Non-TTY: steps between lines. Default: a twentieth of the run. */
  readonly every?: number;
  /** Clock in ms (tests). Default `performance.now`. */
  readonly now?: () => number;
}

const REDRAW_MS = 100;

/** Width of `loss 2.3141 | lr 3.00e-2 | 12.3k tok/s | ETA 12:34` (give or take). */
const FIELDS_WIDTH = 52;

export class ProgressBar implements StatusLine {
  readonly #out: Output;
  readonly #options: ProgressOptions;
  readonly #now: () => number;
  #total = 0;
  #startStep = 0;
  #startedAt = 0;
  #every = 1;
  #lastPrinted = -Infinity;
  #barWidth = 0;
  #drawnAt = -Infinity;
  #line = '';

  constructor(out: Output, options: ProgressOptions) {
    this.#out = out;
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Training began (the `started` event): `totalSteps`, counting from `startStep` when resuming. */
  start(totalSteps: number, startStep: number): void {
    this.#total = totalSteps;
    this.#startStep = startStep;
    this.#startedAt = this.#now();
    this.#every = this.#options.every ?? Math.max(1, Math.round((totalSteps - startStep) / 20));
    this.#lastPrinted = startStep;
    // Fixed for the run so the line does not jitter: room left beside the longest head and fields.
    const head = `step ${totalSteps}/${totalSteps}  100% `.length;
    this.#barWidth = Math.min(30, (this.#options.columns ?? 100) - head - FIELDS_WIDTH - 4);
    if (this.#options.tty) this.#out.setStatus(this);
  }

  /** A `step` event. */
  step(e: StepEvent): void {
    this.#line = this.format(e);
    if (this.#options.tty) {
      // At most ~10 redraws a second; the last step always shows.
      const now = this.#now();
      if (now - this.#drawnAt < REDRAW_MS && e.step < this.#total) return;
      this.#drawnAt = now;
      this.redraw();
    } else if (e.step - this.#lastPrinted >= this.#every || e.step >= this.#total) {
      this.#lastPrinted = e.step;
      this.#out.stderr.write(`${this.#line}\n`);
    }
  }

  /** Removes the bar (the run ended). */
  stop(): void {
    if (!this.#options.tty) return;
    this.clear();
    this.#out.setStatus(undefined);
    this.#line = '';
  }

  clear(): void {
    if (this.#options.tty && this.#line) this.#out.stderr.write('\r\x1b[K');
  }

  redraw(): void {
    if (this.#options.tty && this.#line) this.#out.stderr.write(`\r\x1b[K${this.#line}`);
  }

  /** The bar's text for `e` (no newline). */
  format(e: StepEvent): string {
    const total = Math.max(this.#total, e.step, 1);
    const fraction = Math.min(1, e.step / total);
    const elapsed = (this.#now() - this.#startedAt) / 1000;
    const done = e.step - this.#startStep;
    const eta = done > 0 && elapsed > 0 ? ((total - e.step) * elapsed) / done : undefined;
    const fields = [
      `loss ${formatLoss(e.loss)}`,
      `lr ${e.lr.toExponential(2)}`,
      `${formatCount(e.tokensPerS)} tok/s`,
      `ETA ${eta === undefined ? '?' : formatDuration(eta)}`,
    ].join(' | ');
    const head = `step ${e.step}/${total}`;
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const width = this.#barWidth;
    if (width < 5) return `${head} ${pct} | ${fields}`.slice(0, Math.max((this.#options.columns ?? 100) - 1, 20));
    const filled = Math.round(fraction * width);
    return `${head} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct} | ${fields}`;
  }
}

function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? loss.toFixed(4) : String(loss);
}

/** 1234 → `1.2k`, 2.5e6 → `2.5M`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

/** Seconds → `0:45`, `12:03`, `1:02:03`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
