/** The dashboard's stylesheet, served as /dashboard/app.css (a file, so the page's CSP needs no inline styles). */
export const DASHBOARD_CSS = `
:root { font-family: system-ui, sans-serif; color: #1d232a; background: #f6f7f9; }
body { margin: 0 auto; max-width: 1180px; padding: 16px; }
header { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
h1 { font-size: 1.2rem; margin: 0 8px 0 0; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px 16px; margin-top: 16px; }
h2 { font-size: 1rem; margin: 0 0 8px; } h3 { font-size: 0.9rem; margin: 14px 0 6px; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f2; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics { width: auto; min-width: 420px; } table.metrics th[scope=row] { font-weight: 500; color: #344054; }
tr.job { cursor: pointer; } tr.job:hover { background: #f0f4ff; }
.status-succeeded { color: #17803d; } .status-failed { color: #b42318; } .status-running { color: #1d4ed8; }
.status-cancelled { color: #667085; } .status-paused, .status-pausing { color: #b54708; }
.muted { color: #667085; font-size: 0.85rem; } .error { color: #b42318; white-space: pre-wrap; }
input, select, textarea, button { font: inherit; }
input[type=number] { width: 6em; }
textarea { width: 100%; min-height: 60px; box-sizing: border-box; }
.row { display: flex; gap: 10px; flex-wrap: wrap; align-items: center; margin: 6px 0; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 500; }
#new-job > div { border: 1px solid #eef0f2; border-radius: 6px; padding: 8px 12px; margin-top: 6px; }
.fields { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 6px 14px; margin: 6px 0; }
.field { display: grid; grid-template-columns: 1fr auto; gap: 0 6px; align-items: center; font-size: 0.85rem; }
.field .field-name { font-family: ui-monospace, monospace; font-size: 0.8rem; }
.field input, .field select { width: 9em; }
.field .field-hint { grid-column: 1 / -1; font-size: 0.75rem; }
fieldset.nested { border: 1px solid #eef0f2; border-radius: 6px; grid-column: 1 / -1; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 10px; }
.chart { border: 1px solid #eef0f2; border-radius: 6px; padding: 4px; min-height: 80px; }
.chart-title { font-size: 0.8rem; font-weight: 600; margin: 0 0 2px 4px; }
.chart-empty { padding: 24px; text-align: center; }
.chart .u-legend { font-size: 0.75rem; }
#results.compare { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.run h3 { margin-top: 8px; font-family: ui-monospace, monospace; font-size: 0.85rem; }
.vote { font-weight: 500; margin: 4px 0; }
.histogram { margin: 6px 0 10px; max-width: 520px; }
.bar { display: grid; grid-template-columns: 8em 1fr 2.5em; gap: 6px; align-items: center; font-size: 0.85rem; margin: 2px 0; }
.bar-label { font-family: ui-monospace, monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar-track { background: #eef0f2; height: 14px; border-radius: 3px; overflow: hidden; }
.bar-fill { background: #93a4c8; height: 100%; } .bar-fill.winner { background: #1d4ed8; }
.bar-count { text-align: right; font-variant-numeric: tabular-nums; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 8px; }
.sample { border: 1px solid #dbe2f3; border-left: 3px solid #c7d2fe; border-radius: 4px; padding: 6px 8px; min-width: 0; }
.thinking { color: #667085; font-style: italic; white-space: pre-wrap; font-size: 0.85rem; } .answer { white-space: pre-wrap; }
.soft-thoughts summary { font-size: 0.8rem; font-weight: 500; color: #344054; }
.steps { display: flex; flex-wrap: wrap; gap: 6px 3px; padding-bottom: 4px; }
.step { flex: 0 0 auto; min-width: 46px; border-left: 1px solid #eef0f2; padding-left: 2px; }
.step-no { font-size: 0.65rem; color: #98a2b3; text-align: center; }
.tok { position: relative; font-family: ui-monospace, monospace; font-size: 0.72rem; padding: 1px 2px; display: flex; justify-content: space-between; gap: 3px; }
.tok.top .tok-text { font-weight: 700; color: #1d2939; }
.tok-text { color: #475467; white-space: pre; } .tok-w { color: #98a2b3; font-size: 0.62rem; }
.tok-folded { font-size: 0.62rem; color: #98a2b3; text-align: center; }
.w-bar { position: absolute; left: 0; bottom: 0; height: 2px; background: #1d4ed8; }
code { font-size: 0.8rem; }
.hp-list { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 0.85rem; margin: 4px 0 8px; }
body.no-key #new-job { display: none; }
`;
