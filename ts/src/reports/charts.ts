/**
 * The report's charts: {@link chartSpecs} turns a run into plain data (JSON, embedded in the page) and
 * {@link CHART_SCRIPT} draws it in the browser with uPlot (inlined by the page, see assets.ts). Every
 * chart is against the optimizer step; a baseline (metrics before training) is a dashed line.
 */
import type { RunData } from './run-data.js';

/** One line of a chart: a value per x (null where the series has no point). */
export interface SeriesSpec {
  readonly label: string;
  readonly values: readonly (number | null)[];
  readonly color: string;
  /** Dashed: a reference line (the baseline). */
  readonly dash?: boolean;
  /** Dots on the points: for sparse series (evaluations). */
  readonly points?: boolean;
  /**
   * Dots only, no line between them: evaluations at step 0 and at the end only, where a line would
   * draw progress that was never measured in between.
   */
  readonly pointsOnly?: boolean;
}

/** One chart, as the page's script reads it. */
export interface ChartSpec {
  /** The chart's element is `#chart-<id>`. */
  readonly id: string;
  readonly title: string;
  readonly yLabel: string;
  /** Steps, ascending. */
  readonly x: readonly number[];
  readonly series: readonly SeriesSpec[];
}

const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777', '#0891b2', '#4b5563'];
const BASELINE_COLOR = '#6b7280';

/** True for metrics where lower is better (losses, perplexities, error rates). */
export function lowerIsBetter(metric: string): boolean {
  return /loss|perplexity|ppl|nll|error|\bwer\b|\bcer\b/i.test(metric);
}

/** The charts a run has data for: loss, learning rate, eval metrics, gradient norm, throughput. */
export function chartSpecs(run: RunData): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const stepXs = run.steps.map((s) => s.step);
  const evalLoss = run.evals.filter((e) => typeof e.metrics['loss'] === 'number');
  if (run.steps.length > 0 || evalLoss.length > 0) {
    const x = union(stepXs, evalLoss.map((e) => e.step));
    const series: SeriesSpec[] = [];
    if (run.steps.length > 0) series.push({ label: 'train loss', values: at(x, run.steps, (s) => s.loss), color: PALETTE[0]! });
    if (evalLoss.length > 0) series.push({ label: 'eval loss', values: at(x, evalLoss, (e) => e.metrics['loss']!), color: PALETTE[1]!, points: true, pointsOnly: evalLoss.length < 3 });
    const base = run.baseline?.['loss'];
    if (base !== undefined) series.push({ label: 'baseline eval loss', values: x.map(() => base), color: BASELINE_COLOR, dash: true });
    charts.push({ id: 'loss', title: 'Loss', yLabel: 'loss', x, series });
  }
  if (run.steps.length > 0) {
    charts.push({ id: 'lr', title: 'Learning rate', yLabel: 'lr', x: stepXs, series: [{ label: 'lr', values: run.steps.map((s) => s.lr), color: PALETTE[2]! }] });
  }
  const names = evalMetricNames(run).filter((m) => m !== 'loss');
  if (names.length > 0) {
    const x = run.evals.map((e) => e.step);
    const series: SeriesSpec[] = [];
    names.forEach((name, i) => {
      const color = PALETTE[(i + 3) % PALETTE.length]!;
      series.push({ label: name, values: run.evals.map((e) => e.metrics[name] ?? null), color, points: true, pointsOnly: run.evals.length < 3 });
      const base = run.baseline?.[name];
      if (base !== undefined) series.push({ label: `${name} (baseline)`, values: x.map(() => base), color, dash: true });
    });
    charts.push({ id: 'metrics', title: 'Eval metrics', yLabel: 'value', x, series });
  }
  if (run.steps.length > 0) {
    charts.push({ id: 'grad-norm', title: 'Gradient norm (before clipping)', yLabel: 'norm', x: stepXs, series: [{ label: 'grad norm', values: run.steps.map((s) => s.gradNorm), color: PALETTE[4]! }] });
    charts.push({ id: 'throughput', title: 'Throughput', yLabel: 'tokens/s', x: stepXs, series: [{ label: 'tokens/s', values: run.steps.map((s) => s.tokensPerS), color: PALETTE[6]! }] });
  }
  return charts;
}

/** Metric names over all evaluations and the baseline, in first-seen order. */
export function evalMetricNames(run: RunData): string[] {
  const names = new Set<string>(Object.keys(run.baseline ?? {}));
  for (const e of run.evals) for (const name of Object.keys(e.metrics)) names.add(name);
  return [...names];
}

function union(a: readonly number[], b: readonly number[]): number[] {
  return [...new Set([...a, ...b])].sort((p, q) => p - q);
}

function at<T extends { step: number }>(x: readonly number[], items: readonly T[], value: (item: T) => number): (number | null)[] {
  const byStep = new Map(items.map((item) => [item.step, value(item)]));
  return x.map((step) => {
    const v = byStep.get(step);
    return v === undefined || !Number.isFinite(v) ? null : v;
  });
}

/**
 * Browser code: reads the charts from `#chart-data` and draws each chart into `#chart-<id>` with the inlined uPlot.
 * When done it sets `data-charts-drawn` on `<body>` to the number of charts drawn (tests wait for it).
 * Plain ES2017, no imports: it runs from file:// with nothing else loaded.
 */
export const CHART_SCRIPT = String.raw`(function () {
  'use strict';
  var specs = JSON.parse(document.getElementById('chart-data').textContent).charts;
  function tick(v) {
    if (v == null) return '';
    var a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    return String(Number(v.toPrecision(3)));
  }
  var drawn = 0;
  specs.forEach(function (spec) {
    var el = document.getElementById('chart-' + spec.id);
    if (!el) return;
    var series = [{ label: 'step' }].concat(spec.series.map(function (s) {
      return {
        label: s.label,
        stroke: s.color,
        width: s.dash ? 1.5 : 2,
        dash: s.dash ? [6, 5] : undefined,
        spanGaps: true,
        paths: s.pointsOnly ? function () { return null; } : undefined,
        points: { show: !!s.points || spec.x.length < 3, size: 7, fill: s.color, stroke: s.color },
        value: function (u, v) { return v == null ? '—' : tick(v); }
      };
    }));
    var data = [spec.x.slice()].concat(spec.series.map(function (s) { return s.values.slice(); }));
    var single = spec.x.length === 1;
    new uPlot({
      width: Math.max(300, el.clientWidth),
      height: 230,
      series: series,
      scales: { x: { time: false, range: single ? function (u, lo, hi) { return [lo - 1, hi + 1]; } : undefined } },
      axes: [
        { label: 'step', labelSize: 18, size: 36, values: function (u, vs) { return vs.map(tick); } },
        { label: spec.yLabel, labelSize: 18, size: 56, values: function (u, vs) { return vs.map(tick); } }
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true }
    }, data, el);
    drawn++;
  });
  document.body.setAttribute('data-charts-drawn', String(drawn));
})();`;
