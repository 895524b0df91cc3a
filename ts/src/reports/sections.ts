/**
 * The report's sections as HTML strings, rendered here (not in the browser) so every number is in the
 * page even where scripts do not run. Every value from the run goes through {@link esc}.
 */
import { toCamel } from '../spec/case.js';
import type { Capabilities } from '../core/capabilities.js';
import type { Metrics } from '../jobs/events.js';
import { lowerIsBetter } from './charts.js';
import { esc, fmtBytes, fmtCount, fmtDuration, fmtNumber, fmtPercent, fmtTime, missing } from './html.js';
import type { RunData } from './run-data.js';

type Row = readonly [label: string, valueHtml: string];

/** A two-column table of label → value; values are HTML already escaped by the caller. */
export function kvTable(rows: readonly Row[], field?: string): string {
  const body = rows.map(([label, value]) => `<tr><th>${esc(label)}</th><td>${value}</td></tr>`).join('');
  return `<table class="t"${field ? ` data-section="${esc(field)}"` : ''}><tbody>${body}</tbody></table>`;
}

function card(label: string, value: string, field: string, note = ''): string {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" data-field="${esc(field)}">${esc(value)}</div>${
    note ? `<div class="note">${esc(note)}</div>` : ''}</div>`;
}

/** The metrics of the trained prompt: the summary's, else the last evaluation after step 0. */
export function tunedMetrics(run: RunData): Metrics | undefined {
  if (run.summary && Object.keys(run.summary.metrics).length > 0) return run.summary.metrics;
  return run.evals.filter((e) => e.step > 0).at(-1)?.metrics;
}

export function cardsSection(run: RunData): string {
  const s = run.summary;
  const start = run.starts.at(-1);
  const total = s?.totalSteps ?? start?.totalSteps;
  const done = s?.steps ?? run.steps.at(-1)?.step;
  const finalLoss = s?.finalLoss ?? run.steps.at(-1)?.loss;
  const tuned = tunedMetrics(run);
  const peak = Math.max(...run.steps.map((e) => e.memoryBytes), Number.NEGATIVE_INFINITY);
  const cards = [
    card('Status', run.status, 'status'),
    card('Steps', `${missing(done) ? '—' : fmtCount(done)} / ${missing(total) ? '—' : fmtCount(total)}`, 'steps'),
    card('Final train loss', fmtNumber(finalLoss), 'final-loss'),
  ];
  for (const [name, value] of Object.entries(tuned ?? {}).slice(0, 3)) {
    const base = run.baseline?.[name];
    cards.push(card(`Eval ${name}`, fmtNumber(value), `eval-${name}`, base === undefined ? '' : `baseline ${fmtNumber(base)}`));
  }
  if (run.best) {
    const verdict = run.selection?.beatBaseline === false ? 'untuned prompt: training did not beat it' : 'loaded by default';
    cards.push(card('Best step', `${fmtCount(run.best.step)} (${run.best.metric} ${fmtNumber(run.best.value)})`, 'best', verdict));
  }
  cards.push(card('Training time', fmtDuration(s?.elapsedS), 'elapsed'));
  if (start) cards.push(card('Trainable params', fmtCount(start.trainableParams), 'trainable-params', `${fmtPercent(start.trainableFraction)} of the base model`));
  if (Number.isFinite(peak)) cards.push(card('Peak memory', fmtBytes(peak), 'peak-memory', start?.device.startsWith('cuda') ? 'device' : 'process RSS'));
  return `<section class="cards">${cards.join('')}</section>`;
}

export function errorSection(run: RunData): string {
  if (!run.error) return '';
  return `<div class="error" data-section="error"><strong>Failed (${esc(run.error.code)}):</strong> ${esc(run.error.message)}</div>`;
}

/** Baseline (before training) against the tuned prompt, one row per metric, with the change. */
export function baselineSection(run: RunData): string {
  const tuned = tunedMetrics(run);
  if (!run.baseline || !tuned) return '';
  const rows = Object.keys(run.baseline).filter((m) => tuned[m] !== undefined).map((m) => {
    const before = run.baseline![m]!;
    const after = tuned[m]!;
    const delta = after - before;
    const better = lowerIsBetter(m) ? delta < 0 : delta > 0;
    const cls = delta === 0 || missing(delta) ? '' : better ? 'good' : 'bad';
    const sign = delta > 0 ? '+' : '';
    return `<tr data-metric="${esc(m)}"><td>${esc(m)}</td><td class="num">${esc(fmtNumber(before))}</td><td class="num">${esc(fmtNumber(after))}</td>` +
      `<td class="num ${cls}">${esc(missing(delta) ? '—' : sign + fmtNumber(delta))}${cls ? ` (${better ? 'better' : 'worse'})` : ''}</td></tr>`;
  });
  if (rows.length === 0) return '';
  return `<h2>Baseline vs tuned</h2><table class="t" data-section="baseline"><thead><tr><th>metric</th><th>baseline (untrained)</th><th>tuned</th><th>change</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>`;
}

export function environmentSection(run: RunData, env: Capabilities | undefined, sdkVersion: string): string {
  const start = run.starts.at(-1);
  const model = run.job['model'] as Record<string, unknown> | undefined;
  const notRecorded = '<span class="empty">not recorded</span>';
  const v = (value: string | null | undefined) => (env ? (value == null ? '<span class="empty">missing</span>' : esc(value)) : notRecorded);
  const gpus = env ? (env.gpus.length ? env.gpus.map((g) => `${g.name} (${fmtBytes(g.memoryBytes)})`).join(', ') : 'none') : undefined;
  return kvTable([
    ['Device', start ? esc(start.device) : notRecorded],
    ['Compute dtype', start ? esc(start.dtype) : notRecorded],
    ['Model dtype', model?.['dtype'] !== undefined ? esc(model['dtype']) : 'model default'],
    ['Python', v(env?.python)],
    ['torch', v(env?.torch)],
    ['transformers', v(env?.transformers)],
    ['peft', v(env?.peft)],
    ['GPUs', gpus === undefined ? notRecorded : esc(gpus)],
    ['bf16 supported', env ? (env.bf16 ? 'yes' : 'no') : notRecorded],
    ['softprompt (report writer)', esc(sdkVersion)],
    ['Node.js (report writer)', esc(process.version)],
  ], 'environment');
}

export function timingsSection(run: RunData, workerStartupS?: number): string {
  const s = run.summary;
  const start = run.starts.at(-1);
  const end = run.doneTime ?? run.lastTime;
  const stepsRun = s && start ? s.steps - start.startStep : undefined;
  const rates = run.steps.map((e) => e.tokensPerS).filter((r) => Number.isFinite(r));
  const meanRate = rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : undefined;
  const setup = run.data && start ? start.time - run.data.time : undefined;
  const rows: Row[] = [
    ['Started', esc(fmtTime(run.firstTime))],
    ['Ended', esc(fmtTime(end))],
    ['Worker start-up (before the job)', esc(fmtDuration(workerStartupS))],
    ['Wall time (first to last event)', esc(fmtDuration(end !== undefined && run.firstTime !== undefined ? end - run.firstTime : undefined))],
    ...(workerStartupS !== undefined && end !== undefined && run.firstTime !== undefined
      ? [['In all (worker start-up included)', esc(fmtDuration(workerStartupS + end - run.firstTime))] as Row]
      : []),
    ['Set-up (data loaded → training started)', esc(fmtDuration(setup))],
    ['Training loop (evaluations included)', esc(fmtDuration(s?.elapsedS))],
    ['Time per step', esc(s && stepsRun ? fmtDuration(s.elapsedS / stepsRun) : '—')],
    ['Mean throughput', esc(meanRate === undefined ? '—' : `${fmtCount(meanRate)} tokens/s`)],
    ['Tokens trained on', esc(fmtCount(s?.tokens))],
    ['Epochs', esc(fmtNumber(s?.epochs))],
  ];
  if (run.starts.length > 1) rows.push(['Resumed', esc(`${run.starts.length - 1} time(s), from step ${run.starts.slice(1).map((x) => x.startStep).join(', ')}`)]);
  return kvTable(rows, 'timings');
}

export function dataSection(run: RunData): string {
  const d = run.data;
  if (!d) return '<p class="empty">No data event was logged.</p>';
  let html = kvTable([
    ['Training rows', esc(fmtCount(d.trainRows))],
    ['Eval rows', esc(fmtCount(d.evalRows))],
    ['Skipped rows', esc(fmtCount(d.skipped))],
  ], 'data');
  if (d.skippedRows.length > 0) {
    const rows = d.skippedRows.map((r) => `<tr><td><code>${esc(r.where)}</code></td><td>${esc(r.error)}</td></tr>`).join('');
    html += `<details open><summary>Skipped rows (first ${d.skippedRows.length})</summary><table class="t" data-section="skipped"><thead><tr><th>where</th><th>why</th></tr></thead><tbody>${rows}</tbody></table></details>`;
  }
  return html;
}

/** The job spec as a flat table (`training.lr` → 0.03), then the whole job.json. */
export function configSection(run: RunData): string {
  const rows: Row[] = [];
  const walk = (value: unknown, path: string, depth: number): void => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && depth < 3 && Object.keys(value).length > 0) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, depth + 1);
      return;
    }
    const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
    rows.push([path, `<code>${esc(text.length > 300 ? `${text.slice(0, 300)}…` : text)}</code>`]);
  };
  // The user's names (`training.batchSize`, as in the builders and job files), not the wire's; a model's
  // config overrides and data rows keep theirs.
  walk(toCamel(run.job, ['overrides', 'rows']), '', 0);
  const pretty = JSON.stringify(run.job, null, 2);
  return kvTable(rows, 'config') + `<details><summary>job.json (as the worker received it)</summary><pre>${esc(pretty)}</pre></details>`;
}

export function checkpointsSection(run: RunData): string {
  const best = run.best?.checkpoint ? run.best : undefined;
  if (run.checkpoints.length === 0 && !best) return '<p class="empty">No checkpoint was written.</p>';
  const rows: Row[] = run.checkpoints.map((c) => [`step ${c.step}`, `<code>${esc(c.path)}</code>`]);
  if (best) rows.unshift([`best: step ${best.step}`, `<code>${esc(best.checkpoint!)}</code> <strong data-field="best-checkpoint">★ best ${esc(best.metric)}</strong>`]);
  return kvTable(rows, 'checkpoints');
}

/** Model selection's verdict: which evaluation is the result, or that training did not beat the untuned prompt. */
export function selectionSection(run: RunData): string {
  const sel = run.selection;
  if (!sel) return '';
  const cls = sel.beatBaseline === false ? 'error' : 'note';
  return `<p class="${cls}" data-section="selection"><strong>Model selection${sel.by ? ` (${esc(sel.by)})` : ''}:</strong> ${esc(sel.message)}</p>`;
}
