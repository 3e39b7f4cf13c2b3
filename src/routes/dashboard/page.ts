/** The dashboard's HTML (no build step, no external assets: it works offline). Its script is ./script.ts. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Soft-thinking reasoning API: dashboard</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d232a; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1100px; padding: 16px; }
  header { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
  h1 { font-size: 1.2rem; margin: 0 16px 0 0; }
  section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px 16px; margin-top: 16px; }
  h2 { font-size: 1rem; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f2; vertical-align: top; }
  tr.job { cursor: pointer; } tr.job:hover { background: #f0f4ff; }
  .status-succeeded { color: #17803d; } .status-failed { color: #b42318; } .status-running { color: #1d4ed8; }
  .muted { color: #667085; font-size: 0.85rem; } .error { color: #b42318; white-space: pre-wrap; }
  input, select, textarea, button { font: inherit; }
  textarea { width: 100%; min-height: 60px; box-sizing: border-box; }
  .row { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin: 6px 0; }
  .sample { border-left: 3px solid #c7d2fe; padding: 4px 8px; margin: 6px 0; }
  .thinking { color: #667085; font-style: italic; white-space: pre-wrap; } .answer { white-space: pre-wrap; }
  svg { background: #fbfbfc; border: 1px solid #eef0f2; }
  code { font-size: 0.8rem; }
</style>
</head>
<body>
<header>
  <h1>Soft-thinking reasoning API</h1>
  <input id="key" type="password" placeholder="API key (sk-...)" size="40" autocomplete="off">
  <button id="save-key">Use key</button>
  <button id="forget-key">Forget</button>
  <span id="key-state" class="muted"></span>
</header>
<p class="muted">The key stays in this tab (sessionStorage) and is sent only to this server. <a href="/docs">API reference</a></p>
<div id="error" class="error" role="alert"></div>

<section id="models-section"><h2>Models</h2><table id="models"></table></section>

<section id="jobs-section">
  <h2>Fine-tuning jobs <button id="refresh-jobs">Refresh</button></h2>
  <table id="jobs"></table>
  <div id="job-detail"></div>
</section>

<section id="playground">
  <h2>Reasoning playground</h2>
  <form id="reason-form">
    <textarea id="prompt" required>Ann has 3 boxes of 4 pens and gives away 5. How many pens are left?</textarea>
    <div class="row">
      <label>model <select id="model"></select></label>
      <label>n <input id="n" type="number" min="1" max="64" value="4" style="width:4em"></label>
      <label>mode <select id="mode"><option>soft</option><option>discrete</option></select></label>
      <label>max tokens <input id="max-tokens" type="number" min="1" value="128" style="width:5em"></label>
      <label>seed <input id="seed" type="number" min="0" placeholder="random" style="width:7em"></label>
      <button type="submit" id="run">Reason</button>
    </div>
  </form>
  <div id="vote"></div>
  <div id="samples"></div>
</section>
<script type="module" src="/dashboard/app.js"></script>
</body>
</html>
`;
