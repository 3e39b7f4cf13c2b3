/**
 * /dashboard/util.js: the dashboard's pure helpers (number formatting, metric series from job events, SSE framing,
 * the create-job form's values from the API's JSON schema) and its small DOM/API helpers. Plain JavaScript in a
 * string (the Workers bundle cannot read files): no backticks or template placeholders inside. Nothing touches the
 * DOM at import time, so tests/sdk/dashboard.test.ts imports the served module in Node and runs the pure parts.
 */
export const UTIL_JS = String.raw`// Helpers of the dashboard (served by src/routes/dashboard). No dependencies.
export const KEY = 'soft-reason-api-key';
export const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/**
 * A number as people read it: integers with separators, 4 significant digits, and exponent form for the very small
 * and very large (a learning rate of 0.0001 reads 1e-4, never 0).
 */
export function formatNumber(v) {
  if (typeof v !== 'number') return v === null || v === undefined ? '-' : String(v);
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e15) return v.toLocaleString('en-US');
  if (a < 1e-3 || a >= 1e6) {
    const [mantissa, exp] = v.toExponential(2).split('e');
    return mantissa.replace(/\.?0+$/, '') + 'e' + exp.replace('+', '');
  }
  if (a >= 1000) return v.toLocaleString('en-US', { maximumFractionDigits: 1 });
  return String(Number(v.toPrecision(4)));
}

/** [{step, reward}] from a job's metrics events (data.step, data.reward_mean), sorted by step. */
export function rewardPoints(events) {
  return metricRows(events, 'metrics')
    .filter((r) => typeof r.reward_mean === 'number' && Number.isFinite(r.reward_mean))
    .map((r) => ({ step: r.step, reward: r.reward_mean }));
}

/** The data of a job's events of one type ('metrics' or 'eval') with a numeric step, one row per step (the last wins), by step. */
export function metricRows(events, type) {
  const byStep = new Map();
  for (const e of events) {
    const d = e && e.type === type ? e.data : null;
    if (d && typeof d.step === 'number') byStep.set(d.step, d);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** uPlot data [steps, ...one array per key] over the union of the rows' steps (null where a row lacks a key). */
export function seriesData(rows, keys) {
  const steps = rows.map((r) => r.step);
  return [steps, ...keys.map((k) => rows.map((r) => (typeof r[k] === 'number' && Number.isFinite(r[k]) ? r[k] : null)))];
}

/** The Pass@k keys of eval rows (pass_at_1, pass_at_4, ...), by k. */
export function passAtKeys(rows) {
  const keys = new Set();
  for (const r of rows) for (const k of Object.keys(r)) if (/^pass_at_\d+$/.test(k)) keys.add(k);
  return [...keys].sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
}

/**
 * Why a chart has nothing to draw although the job runs as asked, or null: the worker measures the KL to the
 * reference policy only when the loss has a KL term (kl_beta > 0); with kl_beta 0 there is no reference policy and
 * no 'kl' metric. hyperparameters: the job's resolved set (job.method.hyperparameters).
 */
export function chartNote(chartId, hyperparameters) {
  const hp = hyperparameters || {};
  if (chartId === 'kl' && hp.kl_beta === 0) return 'KL not computed: kl_beta 0 (no KL term, no reference policy)';
  return null;
}

/**
 * The eval table from a job's eval events (validation at step 0 and every eval_interval steps): head ['step',
 * the Pass@k keys by k, reward_mean, thinking_length, then any other numeric key by name], one row per eval step,
 * newest first (null where a row lacks a key).
 */
export function evalTable(events) {
  const rows = metricRows(events, 'eval');
  const pass = passAtKeys(rows);
  const named = ['reward_mean', 'thinking_length'];
  const seen = new Set();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && k !== 'step') seen.add(k);
  const keys = [...pass, ...named.filter((k) => seen.has(k)), ...[...seen].filter((k) => !pass.includes(k) && !named.includes(k)).sort()];
  return {
    head: ['step', ...keys],
    rows: rows.slice().reverse().map((r) => [r.step, ...keys.map((k) => (typeof r[k] === 'number' ? r[k] : null))]),
  };
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

/** A schema with its $ref resolved against an OpenAPI document. */
export function resolveRef(doc, schema) {
  let s = schema || {};
  for (let i = 0; i < 16 && s.$ref; i++) s = s.$ref.split('/').slice(1).reduce((o, p) => (o ? o[p] : undefined), doc) || {};
  return s;
}

/**
 * What one form input means for a field of the schema: '' leaves the field out (the API's default applies);
 * 'auto', an enum member or a string stays text; a number field gets a number; booleans read true/false. Returns
 * {value} or {error}.
 */
export function parseFieldValue(doc, schema, raw) {
  const text = String(raw).trim();
  if (text === '') return { value: undefined };
  const s = resolveRef(doc, schema);
  const options = s.anyOf || s.oneOf || [s];
  const types = new Set();
  const allowed = new Set();
  for (const o of options.map((x) => resolveRef(doc, x))) {
    [].concat(o.type || []).forEach((t) => types.add(t));
    (o.enum || []).forEach((e) => allowed.add(e));
  }
  if (allowed.has(text)) return { value: text };
  if ((types.has('number') || types.has('integer')) && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text)) {
    const n = Number(text);
    if (types.has('integer') && !types.has('number') && !Number.isInteger(n)) return { error: 'must be an integer' };
    return { value: n };
  }
  if (types.has('boolean') && (text === 'true' || text === 'false')) return { value: text === 'true' };
  if (types.has('string') && allowed.size === 0) return { value: text };
  const expected = [...allowed].map((a) => JSON.stringify(a)).concat([...types].filter((t) => t !== 'string' && t !== 'null'));
  return { error: 'expected ' + expected.join(' or ') };
}

/** The default a field shows, and the part of its description after "auto:" (the API's auto rule), if any. */
export function fieldHint(doc, schema) {
  const s = resolveRef(doc, schema);
  const d = s.default === undefined ? null : typeof s.default === 'object' ? JSON.stringify(s.default) : String(s.default);
  const m = /auto: (.*)$/.exec(s.description || '');
  return { default: d, auto: m ? m[1].replace(/\.$/, '') : null, description: s.description || '' };
}

// ---- browser-only helpers (used by the other modules) ----

function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return 'dash-' + crypto.randomUUID();
  return 'dash-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
}

/** An API error as one line: message, status, code, param and request id. */
export class ApiError extends Error {
  constructor(status, error, requestId) {
    super(error.message + ' (HTTP ' + status + (error.code ? ', ' + error.code : '') + (error.param ? ', param ' + error.param : '') + ', request ' + requestId + ')');
    this.status = status;
    this.error = error;
  }
}

/** fetch with the tab's key; POSTs get an Idempotency-Key; opts.json is sent as JSON, opts.form as multipart. */
export async function api(path, init) {
  const opts = Object.assign({ method: 'GET' }, init || {});
  const headers = { authorization: 'Bearer ' + (sessionStorage.getItem(KEY) || '') };
  let body;
  if (opts.method === 'POST') headers['idempotency-key'] = newKey();
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.form) body = opts.form;
  const res = await fetch(path, { method: opts.method, headers, body, signal: opts.signal });
  if (!res.ok) {
    let parsed = null;
    try { parsed = await res.json(); } catch (e) { /* not JSON */ }
    throw new ApiError(res.status, parsed && parsed.error ? parsed.error : { message: 'HTTP ' + res.status }, res.headers.get('x-request-id'));
  }
  return res;
}
export const getJson = async (path) => (await api(path)).json();

export function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of [].concat(children === undefined ? [] : children)) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
export const iso = (s) => (s ? new Date(s * 1000).toISOString().replace('.000Z', 'Z') : '-');
export const byId = (id) => document.getElementById(id);

export function showError(e) {
  byId('error').textContent = e ? String(e.message || e) : '';
}

export function fillTable(table, head, rows) {
  table.replaceChildren(el('tr', {}, head.map((h) => el('th', {}, h))), ...rows);
}
`;
