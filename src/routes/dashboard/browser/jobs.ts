/**
 * /dashboard/jobs.js: the job list and one job's page: status with cancel / pause / resume, the live charts
 * (./charts.ts), the metrics as a table (latest step and each checkpoint, formatted by util's formatNumber), the
 * eval results on the validation file as a second table (one row per eval step, util's evalTable) and the latest
 * events. While the job is not finished the page polls the API for new events (after the last seen id), the
 * job and its checkpoints, and redraws in place.
 */
export const JOBS_JS = String.raw`import { JobCharts, CHARTS } from './charts.js';
import { TERMINAL, api, byId, el, evalTable, fillTable, formatNumber, getJson, iso, metricRows, showError } from './util.js';

const POLL_MS = 1500;
let current = null; // { jobId, charts, timer }

export async function loadJobs() {
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

async function eventsAfter(jobId, after) {
  const events = [];
  let cursor = after;
  for (let page = 0; page < 50; page++) {
    const list = await getJson('/v1/finetune/' + encodeURIComponent(jobId) + '/events?order=asc&limit=100' + (cursor ? '&after=' + encodeURIComponent(cursor) : ''));
    events.push(...list.data);
    if (list.data.length) cursor = list.data[list.data.length - 1].id;
    if (!list.has_more) break;
  }
  return { events, cursor };
}

const FIRST = CHARTS.flatMap((c) => c.keys || []);

/** Rows: metric names (the charted ones first); columns: the latest step, then the newest checkpoints. */
function metricsTable(events, checkpoints) {
  const latest = metricRows(events, 'metrics').pop();
  const columns = [];
  if (latest) columns.push({ head: 'latest (step ' + latest.step + ')', values: latest });
  for (const c of checkpoints.slice(-5).reverse()) columns.push({ head: 'ckpt ' + c.step_number, values: c.metrics });
  const names = new Set();
  for (const col of columns) for (const [k, v] of Object.entries(col.values)) if (typeof v === 'number' && k !== 'step') names.add(k);
  const order = [...FIRST.filter((k) => names.has(k)), ...[...names].filter((k) => !FIRST.includes(k)).sort()];
  const table = el('table', { class: 'metrics', id: 'metrics-table' });
  if (!columns.length) return el('p', { class: 'muted' }, 'no metrics yet');
  fillTable(table, ['metric', ...columns.map((c) => c.head)], order.map((k) =>
    el('tr', {}, [el('th', { scope: 'row' }, k), ...columns.map((c) => el('td', { class: 'num', title: String(c.values[k]) }, formatNumber(c.values[k])))]),
  ));
  return table;
}

/** Rows: one per eval on the validation file (step 0, every eval_interval steps, the last step), newest first. */
function evalMetricsTable(job, events) {
  const t = evalTable(events);
  if (!t.rows.length) return el('p', { class: 'muted', id: 'eval-table-empty' }, job.validation_file ? 'no eval yet' : 'no eval: the job has no validation file');
  const table = el('table', { class: 'metrics', id: 'eval-table' });
  fillTable(table, t.head, t.rows.map((r) =>
    el('tr', {}, r.map((v, i) => (i === 0 ? el('th', { scope: 'row' }, String(v)) : el('td', { class: 'num', title: String(v) }, formatNumber(v))))),
  ));
  return table;
}

function render(view, job, events, checkpoints) {
  const path = '/v1/finetune/' + encodeURIComponent(job.id);
  const act = (verb) =>
    el('button', { id: 'job-' + verb, onclick: () => api(path + '/' + verb, { method: 'POST' }).then(() => Promise.all([refresh(view), loadJobs()])).catch(showError) }, verb);
  const actions = TERMINAL.includes(job.status) ? [] : [job.status === 'paused' || job.status === 'pausing' ? act('resume') : act('pause'), act('cancel')];
  view.head.replaceChildren(
    el('h2', {}, ['Job ', el('code', {}, job.id), ' ', el('span', { class: 'status-' + job.status, id: 'job-status' }, job.status)]),
    el('div', { class: 'row' }, actions),
    el('p', { class: 'muted' }, job.method.type + ' on ' + job.model + ', ' + job.trained_steps + ' steps trained, attempt ' + job.attempts +
      (job.fine_tuned_model ? ', model ' + job.fine_tuned_model : '') + (job.error ? ', error: ' + job.error.message : '')),
  );
  const hp = Object.entries(job.method.hyperparameters || {});
  view.hyperparameters.replaceChildren(el('div', { class: 'hp-list' }, hp.map(([k, v]) => el('span', {}, [el('code', {}, k), ' ', formatNumber(v)]))));
  view.charts.update(events, checkpoints.map((c) => c.step_number), job.method.hyperparameters);
  view.table.replaceChildren(metricsTable(events, checkpoints));
  view.evals.replaceChildren(evalMetricsTable(job, events));
  const cp = el('table');
  fillTable(cp, ['step', 'model'], checkpoints.map((c) => el('tr', {}, [el('td', {}, String(c.step_number)), el('td', {}, el('code', {}, c.fine_tuned_model_checkpoint))])));
  view.checkpoints.replaceChildren(cp);
  const log = el('table');
  fillTable(log, ['time', 'level', 'type', 'message'], events.slice(-15).reverse().map((e) => el('tr', {}, [iso(e.created_at), e.level, e.type, e.message].map((c) => el('td', {}, c)))));
  view.log.replaceChildren(log);
}

async function refresh(view) {
  const path = '/v1/finetune/' + encodeURIComponent(view.jobId);
  const [job, fresh, checkpoints] = await Promise.all([getJson(path), eventsAfter(view.jobId, view.cursor), getJson(path + '/checkpoints?limit=100')]);
  if (current !== view) return null;
  view.events.push(...fresh.events);
  view.cursor = fresh.cursor;
  render(view, job, view.events, [...checkpoints.data].sort((a, b) => a.step_number - b.step_number));
  return job;
}

function stop() {
  if (!current) return;
  clearTimeout(current.timer);
  current.charts.destroy();
  current = null;
}

/** Opens a job; follows it live until it finishes or another job is opened. */
export async function showJob(jobId) {
  stop();
  history.replaceState(null, '', location.pathname + '#job=' + encodeURIComponent(jobId));
  const box = byId('job-detail');
  const view = {
    jobId,
    cursor: '',
    events: [],
    head: el('div'),
    charts: null,
    table: el('div'),
    evals: el('div'),
    hyperparameters: el('div'),
    checkpoints: el('div'),
    log: el('div'),
    timer: null,
  };
  const chartBox = el('div', { class: 'charts', id: 'charts' });
  view.charts = new JobCharts(chartBox);
  box.replaceChildren(view.head, el('details', { id: 'job-hyperparameters' }, [el('summary', {}, 'Hyperparameters (as resolved at create)'), view.hyperparameters]), chartBox, el('h3', {}, 'Metrics'), view.table, el('h3', {}, 'Eval (validation file)'), view.evals, el('h3', {}, 'Checkpoints'), view.checkpoints, el('h3', {}, 'Latest events'), view.log);
  current = view;
  const tick = async () => {
    if (current !== view) return;
    let job = null;
    try {
      job = await refresh(view);
    } catch (e) {
      showError(e);
    }
    if (current === view && !(job && TERMINAL.includes(job.status))) view.timer = setTimeout(tick, POLL_MS);
    else if (job) loadJobs().catch(showError);
  };
  await tick();
}

export function closeJob() {
  stop();
  byId('job-detail').replaceChildren();
}
`;
