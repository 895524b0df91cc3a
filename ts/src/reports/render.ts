/**
 * One run → one self-contained HTML page: the sections rendered as HTML, the chart data as JSON in a
 * `<script type="application/json">` block, uPlot and the chart script inline. A Content-Security-
 * Policy allows exactly those two inline scripts and the one stylesheet (by hash) and nothing from the
 * network, so even a string that slipped past escaping could not run or fetch anything.
 */
import type { Capabilities } from '../core/capabilities.js';
import { chartLibrary } from './assets.js';
import { CHART_SCRIPT, type ChartSpec, chartSpecs } from './charts.js';
import { cspHash, esc, fmtTime, jsonForScript } from './html.js';
import type { RunData } from './run-data.js';
import {
  baselineSection,
  selectionSection,
  cardsSection,
  checkpointsSection,
  configSection,
  dataSection,
  environmentSection,
  errorSection,
  timingsSection,
} from './sections.js';
import { REPORT_CSS } from './style.js';

export interface RenderInput {
  readonly run: RunData;
  readonly environment?: Capabilities;
  readonly title?: string;
  /** Seconds the worker took to start before the job (RunReportOptions.workerStartupS). */
  readonly workerStartupS?: number;
  /** The SDK version that writes the report. */
  readonly sdkVersion: string;
  /** Unix seconds. */
  readonly generatedAt: number;
}

/** The data block: the charts, plus the run as read, for anyone who wants the numbers back out. */
export interface ReportData {
  readonly charts: readonly ChartSpec[];
  readonly run: RunData;
  readonly environment: Capabilities | null;
}

/** The default title, naming the model: `prompt_tuning · gpt2 (tiny)`, `prompt_tuning · smollm2 (embedded)`. */
export function defaultTitle(run: RunData): string {
  const method = typeof run.job['method'] === 'string' ? run.job['method'] : 'training run';
  const model = run.job['model'] as Record<string, unknown> | undefined;
  const str = (key: string) => (typeof model?.[key] === 'string' ? (model[key] as string) : undefined);
  const name = str('name_or_path') ?? (str('embedded') ? `${str('embedded')} (embedded)` : str('tiny') ? `${str('tiny')} (tiny)` : undefined);
  return name ? `${method} · ${name}` : method;
}

export function renderReport(input: RenderInput): string {
  const { run } = input;
  const lib = chartLibrary();
  const charts = chartSpecs(run);
  const data: ReportData = { charts, run, environment: input.environment ?? null };
  const css = lib.css + REPORT_CSS;
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(lib.script)} ${cspHash(CHART_SCRIPT)}`,
    `style-src ${cspHash(css)}`,
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const title = input.title ?? defaultTitle(run);
  const task = typeof run.job['task'] === 'string' ? ` · task ${run.job['task']}` : '';
  const chartBoxes = charts.map((c) => `<div class="chart-box"><h3>${esc(c.title)}</h3><div class="chart" id="chart-${esc(c.id)}"></div></div>`).join('');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="softprompt ${esc(input.sdkVersion)}">
<title>${esc(title)} · run report</title>
<style>${css}</style>
</head>
<body>
<main>
<header>
<h1>${esc(title)}<span class="badge ${esc(run.status)}">${esc(run.status)}</span></h1>
<div class="sub"><code>${esc(run.runDir)}</code>${esc(task)}</div>
</header>
${cardsSection(run)}
${errorSection(run)}
${selectionSection(run)}
${baselineSection(run)}
<h2>Training curves</h2>
${charts.length ? `<section class="charts">${chartBoxes}</section>` : '<p class="empty">No step or eval event was logged yet.</p>'}
<div class="cols">
<section><h2>Environment</h2>${environmentSection(run, input.environment, input.sdkVersion)}</section>
<section><h2>Timings</h2>${timingsSection(run, input.workerStartupS)}</section>
</div>
<h2>Data</h2>
${dataSection(run)}
<h2>Checkpoints</h2>
${checkpointsSection(run)}
<h2>Job</h2>
${configSection(run)}
<footer>Generated ${esc(fmtTime(input.generatedAt))} by softprompt ${esc(input.sdkVersion)} from <code>job.json</code> and <code>events.jsonl</code>${
  run.unreadableLines ? ` (${run.unreadableLines} unreadable line(s) skipped)` : ''}; charts by uPlot ${esc(lib.version)}, inlined.</footer>
</main>
<script type="application/json" id="chart-data">${jsonForScript(data)}</script>
<script>${lib.script}</script>
<script>${CHART_SCRIPT}</script>
</body>
</html>
`;
}
