/**
 * /dashboard without a browser: the page, its stylesheet, its modules and the vendored uPlot are served without a
 * key under a CSP with no inline code, and nothing is loaded from elsewhere; the vendored uPlot is byte for byte the
 * pinned npm package's build; the modules, imported here as a browser gets them, compute the right things from real
 * API answers (metric series from events a protocol-speaking test worker posted, the real event stream's frames, the
 * create-job form's values against the real OpenAPI document) and format numbers people can read (1e-4 is not 0).
 * The browser test is ./dashboard-browser.test.ts.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import openapi from '../../openapi/openapi.json';
import { vendoredFiles } from '../../scripts/vendor-uplot';
import { DASHBOARD_MODULES } from '../../src/routes/dashboard';
import { TestWorker } from '../helpers/worker-client';
import { WORKER_TOKEN } from '../helpers/app';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

const ROOT = resolve(__dirname, '../..');
type Fn = (...args: any[]) => any;
let s: SdkServer;
let util: Record<string, Fn>;
let playground: Record<string, Fn>;
const served: Record<string, string> = {};

beforeAll(async () => {
  s = await startSdkServer();
  const dir = mkdtempSync(join(tmpdir(), 'dash-'));
  for (const name of [...Object.keys(DASHBOARD_MODULES), 'uplot.js', 'uplot.css', 'app.css']) {
    const res = await fetch(`${s.base}/dashboard/${name}`);
    expect(res.status, name).toBe(200);
    expect(res.headers.get('content-type'), name).toMatch(name.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
    served[name] = await res.text();
    writeFileSync(join(dir, name), served[name]);
  }
  util = await import(/* @vite-ignore */ pathToFileURL(join(dir, 'util.js')).href);
  // playground.js imports util.js only; its pure helpers run in Node
  playground = await import(/* @vite-ignore */ pathToFileURL(join(dir, 'playground.js')).href);
});
afterAll(() => s?.close());

describe('dashboard assets', () => {
  it('serves the page without a key, under a CSP without inline code, loading nothing from elsewhere', async () => {
    const res = await fetch(`${s.base}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const html = await res.text();
    expect(html).not.toMatch(/<style|<script(?![^>]*\bsrc=)| style=/);
    expect(html).toContain('<script src="/dashboard/uplot.js"></script>');
    expect(html).toContain('<script type="module" src="/dashboard/app.js"></script>');
    const external = /(https?:)?\/\/(?!www\.w3\.org\/)[a-z0-9-]+\.[a-z]/i;
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    for (const [name, text] of Object.entries(served)) if (name !== 'uplot.js') expect(text, name).not.toMatch(external);
    expect((await fetch(`${s.base}/dashboard/nope.js`)).status).toBe(404);
  });

  it('serves the vendored uPlot exactly as the pinned npm package builds it, with its licence', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/uplot/package.json'), 'utf8'));
    expect(pkg.version).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies.uplot);
    expect(served['uplot.js']).toBe(readFileSync(join(ROOT, 'node_modules/uplot/dist/uPlot.iife.min.js'), 'utf8'));
    expect(served['uplot.css']).toBe(readFileSync(join(ROOT, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8'));
    for (const [name, text] of Object.entries(vendoredFiles())) expect(readFileSync(join(ROOT, 'vendor/uplot', name), 'utf8'), name).toBe(text);
    expect(readFileSync(join(ROOT, 'vendor/uplot/README.md'), 'utf8')).toContain(`uPlot ${pkg.version}`);
    expect(readFileSync(join(ROOT, 'vendor/uplot/LICENSE'), 'utf8')).toContain('MIT');
  });

  it('calls only API paths of the OpenAPI document, which does not list the dashboard', () => {
    const paths = Object.keys(openapi.paths);
    const used = Object.values(DASHBOARD_MODULES).flatMap((js) => [...js.matchAll(/'(\/v1\/[^'?]*)/g)].map((m) => m[1]));
    expect(used.length).toBeGreaterThanOrEqual(6);
    for (const p of used) expect(paths.some((q) => q.startsWith(p)), p).toBe(true);
    expect(paths.some((p) => p.startsWith('/dashboard'))).toBe(false);
  });
});

describe('dashboard helpers', () => {
  it('formats numbers so that small ones stay visible', () => {
    const f = util.formatNumber;
    expect(f(1e-4)).toBe('1e-4');
    expect(f(0.0001)).toBe('1e-4');
    expect(f(1.234e-5)).toBe('1.23e-5');
    expect(f(-2.5e-7)).toBe('-2.5e-7');
    expect(f(0)).toBe('0');
    expect(f(0.5)).toBe('0.5');
    expect(f(0.123456)).toBe('0.1235');
    expect(f(3.14159)).toBe('3.142');
    expect(f(42)).toBe('42');
    expect(f(845056)).toBe('845,056');
    expect(f(1234.56)).toBe('1,234.6');
    expect(f(2.5e9 + 0.5)).toBe('2.5e9');
    expect(f(null)).toBe('-');
    expect(f(Number.NaN)).toBe('NaN');
  });

  it('builds the chart series from the metrics and eval events a worker posted', async () => {
    const api = s.sdk();
    const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    expect(claim.job.id).toBe(job.id);
    const seq = claim.next_event_seq;
    const rewards = [0.25, 0.5, 0.375];
    const res = await worker.events(job.id, claim.lease.token, [
      ...rewards.map((r, i) => ({ seq: seq + i, type: 'metrics', message: `step ${i + 1}`, data: { step: i + 1, reward_mean: r, learning_rate: 1e-4, ...(i === 1 ? {} : { kl: 0.01 * i }) } })),
      { seq: seq + 3, type: 'eval', message: 'eval', data: { step: 2, pass_at_1: 0.5, pass_at_4: 0.75 } },
      { seq: seq + 4, message: 'a note without metrics' },
      // the worker's eval event (softgrpo.train.evaluate): at step 0 before training, with all of its keys
      { seq: seq + 5, type: 'eval', message: 'eval at step 0', data: { step: 0, reward_mean: 0.125, pass_at_1: 0.125, pass_at_4: 0.25, n_prompts: 2, samples_per_prompt: 4, thinking_length: 12.5 } },
    ]);
    expect(res.status).toBe(200);
    const events = (await api.events(job.id, { limit: 100 })).data;
    expect(util.rewardPoints(events)).toEqual(rewards.map((r, i) => ({ step: i + 1, reward: r })));
    expect(util.rewardPoints([...events].reverse())).toEqual(util.rewardPoints(events));
    const rows = util.metricRows(events, 'metrics');
    expect(util.seriesData(rows, ['reward_mean', 'kl'])).toEqual([[1, 2, 3], rewards, [0, null, 0.02]]);
    const evals = util.metricRows(events, 'eval');
    expect(util.passAtKeys(evals)).toEqual(['pass_at_1', 'pass_at_4']);
    expect(util.seriesData(evals, util.passAtKeys(evals))).toEqual([[0, 2], [0.125, 0.5], [0.25, 0.75]]);
    // the eval table: a row per eval step, newest first, every numeric key the worker reported
    expect(util.evalTable(events)).toEqual({
      head: ['step', 'pass_at_1', 'pass_at_4', 'reward_mean', 'thinking_length', 'n_prompts', 'samples_per_prompt'],
      rows: [
        [2, 0.5, 0.75, null, null, null, null],
        [0, 0.125, 0.25, 0.125, 12.5, 2, 4],
      ],
    });
    expect(util.evalTable([])).toEqual({ head: ['step'], rows: [] });
    // a job with kl_beta 0 has no KL term: the KL chart says so instead of staying empty (this job's auto 0.001 has one)
    expect(job.method.hyperparameters.kl_beta).toBe(0.001);
    expect(util.chartNote('kl', job.method.hyperparameters)).toBeNull();
    expect(util.chartNote('kl', { ...job.method.hyperparameters, kl_beta: 0 })).toBe('KL not computed: kl_beta 0 (no KL term, no reference policy)');
    expect(util.chartNote('reward', { kl_beta: 0 })).toBeNull();
    await api.cancelJob(job.id);
  });

  it('parses the real event stream into the same frames as eventsource-parser, however the bytes are split', async () => {
    const api = s.sdk();
    const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    await api.cancelJob(job.id);
    const text = await (await fetch(`${s.base}/v1/finetune/${job.id}/events?stream=true`, { headers: { authorization: `Bearer ${s.key}` } })).text();
    const expected: { event: string | null; id: string | null; data: string }[] = [];
    const parser = createParser({ onEvent: (m) => expected.push({ event: m.event ?? null, id: m.id ?? null, data: m.data }) });
    parser.feed(text);
    expect(expected.length).toBeGreaterThanOrEqual(2);
    expect(expected.at(-1)!.event).toBe('done');
    for (const size of [1, 7, 64, text.length]) {
      const got = [];
      let rest = '';
      for (let i = 0; i < text.length; i += size) {
        const out = util.sseFrames(rest + text.slice(i, i + size));
        got.push(...out.frames);
        rest = out.rest;
      }
      expect(got, `chunks of ${size}`).toEqual(expected);
    }
  });

  it('reads the create-job form against the served OpenAPI document, and the API accepts what it builds', async () => {
    const doc = (await (await fetch(`${s.base}/openapi.json`)).json()) as any;
    const hp = util.resolveRef(doc, doc.components.schemas.CreateFineTuningJob.properties.method);
    const fields = util.resolveRef(doc, hp.properties.hyperparameters).properties;
    const parse = (name: string, raw: string) => util.parseFieldValue(doc, fields[name], raw);
    expect(parse('learning_rate', '1e-5')).toEqual({ value: 1e-5 });
    expect(parse('learning_rate', 'auto')).toEqual({ value: 'auto' });
    expect(parse('learning_rate', '')).toEqual({ value: undefined });
    expect(parse('group_size', '4')).toEqual({ value: 4 });
    expect(parse('group_size', '2.5')).toEqual({ error: 'must be an integer' });
    expect(parse('group_size', 'many').error).toContain('"auto"');
    expect(parse('loss', 'soft_grpo')).toEqual({ value: 'soft_grpo' });
    expect(util.fieldHint(doc, fields.group_size)).toMatchObject({ default: 'auto', auto: '8' });
    expect(util.fieldHint(doc, fields.learning_rate).auto).toBe('0.000001');
    const seed = util.parseFieldValue(doc, doc.components.schemas.CreateFineTuningJob.properties.seed, '12');
    expect(seed).toEqual({ value: 12 });

    const api = s.sdk();
    const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
    const hyperparameters = { learning_rate: parse('learning_rate', '1e-5').value, group_size: parse('group_size', '4').value };
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id, method: { type: 'soft_grpo', hyperparameters }, seed: seed.value });
    expect(job.method.hyperparameters).toMatchObject({ learning_rate: 1e-5, group_size: 4 });
    await api.cancelJob(job.id);
  });

  it('draws the vote histogram with the samples that had no answer, and shows weights as percentages', () => {
    const bars = playground.histogramBars({ answer: '11', samples: 5, distribution: [{ answer: '10', count: 1 }, { answer: '11', count: 3 }] });
    expect(bars).toEqual([
      { answer: '11', count: 3, winner: true },
      { answer: '10', count: 1, winner: false },
      { answer: null, count: 1, winner: false },
    ]);
    expect(playground.weightPercent(0.42134)).toBe('42.1%');
    expect(playground.weightPercent(1)).toBe('100.0%');
    expect(playground.weightPercent(1e-9)).toBe('<0.1%');
    expect(playground.visibleToken(' 7\n')).toBe('\u2423' + '7' + '\u23ce');
  });
});
