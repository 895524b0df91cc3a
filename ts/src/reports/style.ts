/** The report's stylesheet: light, readable, printable; system fonts only (nothing to fetch). */
export const REPORT_CSS = `
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; --card: #ffffff;
  --good: #047857; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
code, pre { font: 12.5px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.sub { color: var(--muted); overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
  vertical-align: middle; margin-left: 8px; color: #fff; background: var(--muted); }
.badge.completed { background: var(--good); }
.badge.cancelled { background: var(--warn); }
.badge.failed { background: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px; margin-top: 18px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 20px; font-weight: 600; margin-top: 2px; overflow-wrap: anywhere; }
.card .note { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 12px; }
.chart-box { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px 4px; min-width: 0; }
.chart-box h3 { font-size: 14px; margin: 0 0 6px; }
.chart { width: 100%; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
table.t { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.t th, .t td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
.t th { color: var(--muted); font-weight: 500; width: 40%; }
.t thead th { color: var(--fg); font-weight: 600; width: auto; }
.t td.num { font-variant-numeric: tabular-nums; }
.t tr:last-child > * { border-bottom: none; }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.error { background: #fef2f2; border: 1px solid #fecaca; color: var(--bad); border-radius: 8px; padding: 10px 12px; margin-top: 16px; }
.empty { color: var(--muted); font-style: italic; }
p.note { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin-top: 16px; }
details { margin-top: 12px; }
summary { cursor: pointer; color: var(--muted); }
pre { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; overflow: auto; max-height: 480px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print { body { background: #fff; } .chart-box, .card, table.t { break-inside: avoid; } }
`;
