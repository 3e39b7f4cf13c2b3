/**
 * /dashboard/app.js: the dashboard's entry module. Takes the API key (pasted, or from `#key=` in the address,
 * removed from it at once; kept in sessionStorage for this tab), loads the models and jobs, opens `#job=<id>`,
 * and wires the job form (./job-form.ts), the job page (./jobs.ts) and the playground (./playground.ts).
 */
export const APP_JS = String.raw`import { KEY, byId, getJson, showError } from './util.js';
import { closeJob, loadJobs, showJob } from './jobs.js';
import { buildJobForm } from './job-form.js';
import { playgroundModels, setupPlayground } from './playground.js';

async function loadModels() {
  const list = await getJson('/v1/models');
  const rows = list.data.map((m) => {
    const tr = document.createElement('tr');
    for (const c of [m.id, m.kind, m.root, m.owned_by]) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    return tr;
  });
  const head = document.createElement('tr');
  for (const h of ['id', 'kind', 'root', 'owned by']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  byId('models').replaceChildren(head, ...rows);
  playgroundModels(list.data);
  return list.data;
}

async function refreshAll(jobId) {
  showError(null);
  const has = Boolean(sessionStorage.getItem(KEY));
  byId('key-state').textContent = has ? 'key set for this tab' : 'paste an API key to start';
  document.body.classList.toggle('no-key', !has);
  if (!has) return;
  try {
    const [models] = await Promise.all([loadModels(), loadJobs()]);
    await buildJobForm(models.filter((m) => m.kind === 'base').length ? models.filter((m) => m.kind === 'base') : models);
    if (jobId) await showJob(jobId);
  } catch (e) {
    showError(e);
  }
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
  byId('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = byId('key').value.trim();
    if (v) sessionStorage.setItem(KEY, v);
    byId('key').value = '';
    refreshAll();
  });
  byId('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    closeJob();
    for (const id of ['models', 'jobs', 'job-form', 'results']) byId(id).replaceChildren();
    refreshAll();
  });
  byId('refresh-jobs').addEventListener('click', () => loadJobs().catch(showError));
  setupPlayground();
  refreshAll(readHash());
  setInterval(() => { if (sessionStorage.getItem(KEY) && !document.hidden) loadJobs().catch(showError); }, 5000);
}

boot();
`;
