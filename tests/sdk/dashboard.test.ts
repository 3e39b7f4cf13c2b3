/**
 * /dashboard: the page and its module are served without a key and load nothing from elsewhere (offline); the
 * module served at /dashboard/app.js is imported here as a browser would get it, and its reward-curve and SSE
 * parsing run on real API answers (a job with metrics events posted by a protocol-speaking test worker, the real
 * event stream); every API path the page calls is in the OpenAPI document, and the dashboard is not.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import openapi from '../../openapi/openapi.json';
import { TestWorker } from '../helpers/worker-client';
import { WORKER_TOKEN } from '../helpers/app';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

type DashboardModule = {
  rewardPoints: (events: unknown[]) => { step: number; reward: number }[];
  sseFrames: (text: string) => { frames: { event: string | null; id: string | null; data: string }[]; rest: string };
};

let s: SdkServer;
let js: string;
let mod: DashboardModule;
beforeAll(async () => {
  s = await startSdkServer();
  const res = await fetch(`${s.base}/dashboard/app.js`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/javascript/);
  js = await res.text();
  const file = join(mkdtempSync(join(tmpdir(), 'dash-')), 'app.mjs');
  writeFileSync(file, js);
  mod = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as DashboardModule;
});
afterAll(() => s?.close());

describe('dashboard', () => {
  it('serves the page without a key, with its module, a strict CSP and no external resources', async () => {
    const res = await fetch(`${s.base}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/dashboard/app.js"></script>');
    for (const id of ['key', 'models', 'jobs', 'job-detail', 'reason-form', 'model', 'samples', 'vote']) expect(html).toContain(`id="${id}"`);
    const external = /https?:\/\/(?!www\.w3\.org\/2000\/svg)/;
    expect(html).not.toMatch(external);
    expect(js).not.toMatch(external);
    expect(js).toContain("sessionStorage");
  });

  it('calls only API paths of the OpenAPI document, which does not list the dashboard', () => {
    const paths = Object.keys(openapi.paths);
    const used = [...js.matchAll(/'(\/v1\/[^'?]*)/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThanOrEqual(3);
    for (const p of used) expect(paths.some((q) => q.startsWith(p)), p).toBe(true);
    expect(paths.some((p) => p.startsWith('/dashboard'))).toBe(false);
  });

  it('draws the reward curve from the metrics events a worker posted', async () => {
    const api = s.sdk();
    const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    expect(claim.job.id).toBe(job.id);
    const seq = claim.next_event_seq;
    const rewards = [0.25, 0.5, 0.375];
    const res = await worker.events(job.id, claim.lease.token, [
      ...rewards.map((r, i) => ({ seq: seq + i, type: 'metrics', message: `step ${i + 1}`, data: { step: i + 1, reward_mean: r, kl: 0.01 } })),
      { seq: seq + 3, message: 'a note without metrics' },
    ]);
    expect(res.status).toBe(200);
    const events = (await api.events(job.id, { limit: 100 })).data;
    expect(mod.rewardPoints(events)).toEqual(rewards.map((r, i) => ({ step: i + 1, reward: r })));
    expect(mod.rewardPoints([...events].reverse())).toEqual(mod.rewardPoints(events));
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
        const out = mod.sseFrames(rest + text.slice(i, i + size));
        got.push(...out.frames);
        rest = out.rest;
      }
      expect(got, `chunks of ${size}`).toEqual(expected);
    }
  });
});
