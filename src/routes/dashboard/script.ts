/**
 * The dashboard's browser module, served as /dashboard/app.js. Plain JavaScript in a string (no build step; the
 * Workers bundle cannot read files): no backticks or template placeholders inside. The pure parts (rewardPoints,
 * sseFrames) are exported and tested in Node by importing the served module (tests/sdk/dashboard.test.ts); the
 * DOM part runs only in a browser.
 */
export const DASHBOARD_JS = String.raw`// Dashboard of the soft-thinking reasoning API (served by src/routes/dashboard). No dependencies.
const KEY = 'soft-reason-api-key';
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** [{step, reward}] from a job's metrics events (data.step, data.reward_mean), sorted by step. */
export function rewardPoints(events) {
  const points = [];
  for (const e of events) {
    const d = e && e.type === 'metrics' ? e.data : null;
    if (d && typeof d.step === 'number' && typeof d.reward_mean === 'number' && Number.isFinite(d.reward_mean)) {
      points.push({ step: d.step, reward: d.reward_mean });
    }
  }
  return points.sort((a, b) => a.step - b.step);
}

/** Splits server-sent-event text into complete frames {event, id, data}; returns them and the unfinished rest. */
export function sseFrames(buffer) {
  const frames = [];
  const text = buffer.replace(/\r\n?/g, '\n');
  let start = 0;
  let end;
  while ((end = text.indexOf('\n\n', start)) !== -1) {
    const frame = { event: null, id: null, data: [] };
    for (const line of text.slice(start, end).split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') frame.data.push(value);
      else if (field === 'event') frame.event = value;
      else if (field === 'id') frame.id = value;
    }
    if (frame.data.length) frames.push({ event: frame.event, id: frame.id, data: frame.data.join('\n') });
    start = end + 2;
  }
  return { frames, rest: text.slice(start) };
}

function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return 'dash-' + crypto.randomUUID();
  return 'dash-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
}

async function api(path, init) {
  const opts = Object.assign({ method: 'GET' }, init || {});
  const headers = { authorization: 'Bearer ' + (sessionStorage.getItem(KEY) || '') };
  if (opts.method === 'POST') headers['idempotency-key'] = newKey();
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method: opts.method, headers: headers, body: opts.body });
  if (!res.ok) {
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    const err = body && body.error ? body.error : { message: 'HTTP ' + res.status };
    throw new Error(err.message + ' (HTTP ' + res.status + (err.code ? ', ' + err.code : '') + ', request ' + res.headers.get('x-request-id') + ')');
  }
  return res;
}
const getJson = async (path) => (await api(path)).json();

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of [].concat(children === undefined ? [] : children)) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const iso = (s) => (s ? new Date(s * 1000).toISOString().replace('.000Z', 'Z') : '-');
const byId = (id) => document.getElementById(id);

function showError(e) {
  byId('error').textContent = e ? String(e.message || e) : '';
}

function fillTable(table, head, rows) {
  table.replaceChildren(el('tr', {}, head.map((h) => el('th', {}, h))), ...rows);
}

async function loadModels() {
  const list = await getJson('/v1/models');
  fillTable(byId('models'), ['id', 'kind', 'root', 'owned by'], list.data.map((m) => el('tr', {}, [m.id, m.kind, m.root, m.owned_by].map((c) => el('td', {}, c)))));
  const select = byId('model');
  const current = select.value;
  select.replaceChildren(...list.data.map((m) => el('option', { value: m.id }, m.id)));
  if (current) select.value = current;
}

async function loadJobs() {
  const list = await getJson('/v1/finetune?limit=50');
  fillTable(
    byId('jobs'),
    ['id', 'status', 'model', 'steps', 'fine-tuned model', 'created'],
    list.data.map((j) =>
      el('tr', { class: 'job', onclick: () => showJob(j.id).catch(showError) }, [
        el('td', {}, el('code', {}, j.id)),
        el('td', { class: 'status-' + j.status }, j.status),
        el('td', {}, j.model),
        el('td', {}, String(j.trained_steps)),
        el('td', {}, j.fine_tuned_model || '-'),
        el('td', {}, iso(j.created_at)),
      ]),
    ),
  );
}

async function allEvents(jobId) {
  const events = [];
  let after = '';
  for (let page = 0; page < 50; page++) {
    const list = await getJson('/v1/finetune/' + encodeURIComponent(jobId) + '/events?order=asc&limit=100' + (after ? '&after=' + encodeURIComponent(after) : ''));
    events.push(...list.data);
    if (!list.has_more || !list.last_id) break;
    after = list.last_id;
  }
  return events;
}

function rewardChart(points) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 520, H = 180, P = 32;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('width', W); svg.setAttribute('height', H); svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'reward_mean by step');
  const text = (x, y, s, anchor) => {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', x); t.setAttribute('y', y); t.setAttribute('font-size', '10'); t.setAttribute('text-anchor', anchor || 'start');
    t.textContent = s; svg.append(t);
  };
  if (points.length === 0) { text(W / 2, H / 2, 'no metrics events yet', 'middle'); return svg; }
  const steps = points.map((p) => p.step), rewards = points.map((p) => p.reward);
  const x0 = Math.min(...steps), x1 = Math.max(...steps) || 1;
  const y0 = Math.min(0, ...rewards), y1 = Math.max(1, ...rewards);
  const sx = (s) => P + ((s - x0) / (x1 - x0 || 1)) * (W - 2 * P);
  const sy = (r) => H - P - ((r - y0) / (y1 - y0 || 1)) * (H - 2 * P);
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', points.map((p) => sx(p.step) + ',' + sy(p.reward)).join(' '));
  line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#1d4ed8'); line.setAttribute('stroke-width', '2');
  svg.append(line);
  text(P, H - 8, 'step ' + x0); text(W - P, H - 8, 'step ' + x1, 'end');
  text(4, sy(y1) + 4, y1.toFixed(2)); text(4, sy(y0), y0.toFixed(2));
  text(W / 2, 12, 'reward_mean', 'middle');
  return svg;
}

async function showJob(jobId) {
  const path = '/v1/finetune/' + encodeURIComponent(jobId);
  history.replaceState(null, '', location.pathname + '#job=' + encodeURIComponent(jobId));
  const [job, events, checkpoints] = await Promise.all([getJson(path), allEvents(jobId), getJson(path + '/checkpoints?limit=100')]);
  const act = (verb) => el('button', { onclick: () => api(path + '/' + verb, { method: 'POST' }).then(() => Promise.all([showJob(jobId), loadJobs()])).catch(showError) }, verb);
  const actions = TERMINAL.includes(job.status) ? [] : [act('cancel'), job.status === 'paused' || job.status === 'pausing' ? act('resume') : act('pause')];
  const cpTable = el('table');
  fillTable(cpTable, ['step', 'model', 'metrics'], checkpoints.data.map((c) => el('tr', {}, [
    el('td', {}, String(c.step_number)),
    el('td', {}, el('code', {}, c.fine_tuned_model_checkpoint)),
    el('td', {}, Object.entries(c.metrics).map(([k, v]) => k + '=' + (Math.round(v * 1000) / 1000)).join(' ')),
  ])));
  const log = el('table');
  fillTable(log, ['time', 'level', 'type', 'message'], events.slice(-30).map((e) => el('tr', {}, [iso(e.created_at), e.level, e.type, e.message].map((c) => el('td', {}, c)))));
  byId('job-detail').replaceChildren(
    el('h2', {}, ['Job ', el('code', {}, job.id), ' ', el('span', { class: 'status-' + job.status }, job.status)]),
    el('div', { class: 'row' }, actions),
    el('p', { class: 'muted' }, job.method.type + ' on ' + job.model + ', ' + job.trained_steps + ' steps, attempt ' + job.attempts + (job.error ? ', error: ' + job.error.message : '')),
    rewardChart(rewardPoints(events)),
    el('h2', {}, 'Checkpoints'), cpTable,
    el('h2', {}, 'Latest events'), log,
  );
}

async function runReason(ev) {
  ev.preventDefault();
  showError(null);
  const body = {
    model: byId('model').value,
    prompt: byId('prompt').value,
    n: Number(byId('n').value) || 1,
    mode: byId('mode').value,
    max_tokens: Number(byId('max-tokens').value) || undefined,
    stream: true,
  };
  if (byId('seed').value !== '') body.seed = Number(byId('seed').value);
  const samples = new Map();
  const box = (i) => {
    if (!samples.has(i)) {
      const thinking = el('div', { class: 'thinking' }), answer = el('div', { class: 'answer' }), meta = el('div', { class: 'muted' });
      byId('samples').append(el('div', { class: 'sample' }, [el('strong', {}, 'sample ' + i), thinking, answer, meta]));
      samples.set(i, { thinking, answer, meta });
    }
    return samples.get(i);
  };
  byId('samples').replaceChildren();
  byId('vote').textContent = 'running...';
  byId('run').disabled = true;
  try {
    const res = await api('/v1/reason', { method: 'POST', json: body });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const parsed = sseFrames(rest + decoder.decode(value, { stream: true }));
      rest = parsed.rest;
      for (const f of parsed.frames) {
        if (f.data === '[DONE]') continue;
        const chunk = JSON.parse(f.data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.object === 'reason.vote') {
          const a = chunk.aggregate;
          byId('vote').textContent = 'answer: ' + (a.answer === null ? '-' : a.answer) + ' (' + a.votes + '/' + a.samples + ' votes, ' + chunk.usage.total_tokens + ' tokens)';
          continue;
        }
        for (const c of chunk.choices) {
          const b = box(c.index);
          if (c.delta.reasoning) b.thinking.textContent += c.delta.reasoning;
          if (c.delta.content) b.answer.textContent += c.delta.content;
          if (c.finish_reason) b.meta.textContent = c.finish_reason + ', extracted: ' + (c.extracted_answer == null ? '-' : c.extracted_answer);
        }
      }
    }
  } catch (e) {
    byId('vote').textContent = '';
    showError(e);
  } finally {
    byId('run').disabled = false;
  }
}

async function refreshAll(jobId) {
  showError(null);
  const has = Boolean(sessionStorage.getItem(KEY));
  byId('key-state').textContent = has ? 'key set for this tab' : 'paste an API key to start';
  if (!has) return;
  await Promise.all([loadModels(), loadJobs(), jobId ? showJob(jobId) : null]).catch(showError);
}

/** Links: #job=<id> opens a job; #key=<key> stores the key for this tab and is removed from the address at once. */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get('key');
  if (key) {
    sessionStorage.setItem(KEY, key);
    params.delete('key');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return params.get('job');
}

function boot() {
  byId('save-key').addEventListener('click', () => {
    const v = byId('key').value.trim();
    if (v) sessionStorage.setItem(KEY, v);
    byId('key').value = '';
    refreshAll();
  });
  byId('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    byId('models').replaceChildren(); byId('jobs').replaceChildren(); byId('job-detail').replaceChildren();
    refreshAll();
  });
  byId('refresh-jobs').addEventListener('click', () => loadJobs().catch(showError));
  byId('reason-form').addEventListener('submit', runReason);
  refreshAll(readHash());
  setInterval(() => { if (sessionStorage.getItem(KEY) && !document.hidden) loadJobs().catch(showError); }, 10000);
}

if (typeof document !== 'undefined') boot();
`;
