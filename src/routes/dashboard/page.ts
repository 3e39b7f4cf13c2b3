/**
 * The dashboard's HTML (no build step, nothing from elsewhere: it works offline). Its styles are ./styles.ts
 * (/dashboard/app.css), its charts the vendored uPlot (/dashboard/uplot.js, .css), its modules ./browser/.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Soft-thinking reasoning API: dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/uplot.css">
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<header>
  <h1>Soft-thinking reasoning API</h1>
  <form id="key-form" class="row">
    <input id="key" type="password" placeholder="API key (sk-...)" size="40" autocomplete="off">
    <button id="save-key" type="submit">Use key</button>
    <button id="forget-key" type="button">Forget</button>
  </form>
  <span id="key-state" class="muted"></span>
  <a class="muted" href="/docs">API reference</a>
</header>
<p class="muted">The key stays in this tab (sessionStorage) and is sent only to this server.</p>
<div id="error" class="error" role="alert"></div>

<section id="models-section"><h2>Models</h2><table id="models"></table></section>

<section id="jobs-section">
  <h2>Fine-tuning jobs <button id="refresh-jobs" type="button">Refresh</button></h2>
  <table id="jobs"></table>
  <details id="new-job"><summary>New fine-tuning job</summary><div id="job-form"></div></details>
  <div id="job-detail"></div>
</section>

<section id="playground">
  <h2>Reasoning playground</h2>
  <form id="reason-form">
    <textarea id="prompt" required>Ann has 3 boxes of 4 pens and gives away 5. How many pens are left?</textarea>
    <div class="row">
      <label>model <select id="model"></select></label>
      <label>compare with <select id="compare-model"></select></label>
      <label>n <input id="n" type="number" min="1" max="64" value="4"></label>
      <label>mode <select id="mode"><option>soft</option><option>discrete</option></select></label>
      <label>max tokens <input id="max-tokens" type="number" min="1" value="128"></label>
      <label>seed <input id="seed" type="number" min="0" placeholder="random"></label>
      <label title="soft_thinking.max_topk: tokens mixed per thinking step (empty: the API default)">k <input id="max-topk" type="number" min="1" max="64" placeholder="5"></label>
      <label title="soft_thinking.gumbel_tau: temperature of the mixture weights; higher mixes more evenly (empty: the API default)">Gumbel &tau; <input id="gumbel-tau" type="number" min="0.01" step="0.01" placeholder="0.1"></label>
      <label><input id="soft-thoughts" type="checkbox" checked> soft thoughts</label>
      <button type="submit" id="run">Reason</button>
    </div>
  </form>
  <div id="results"></div>
</section>
<script src="/dashboard/uplot.js"></script>
<script type="module" src="/dashboard/app.js"></script>
</body>
</html>
`;
