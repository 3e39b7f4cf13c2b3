/**
 * `streamEvents()` across server-side stream ends: with a 200 ms maximum stream length the server closes the event
 * stream of a live job several times; the SDK reconnects from the last event id, and the caller sees every event
 * exactly once, including events a worker posted between reconnects, until the job's end.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WORKER_TOKEN } from '../helpers/app';
import { TestWorker } from '../helpers/worker-client';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

let s: SdkServer;
beforeAll(async () => {
  s = await startSdkServer({ sse: { pollMs: 20, keepAliveMs: 50, maxStreamMs: 200 } });
});
afterAll(() => s?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('reconnects after the server ends a long stream, losing and repeating nothing', async () => {
  let streams = 0;
  const api = s.sdk({
    fetch: (r) => {
      if (new URL(r.url).searchParams.get('stream') === 'true') streams++;
      return fetch(r);
    },
  });
  const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
  const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
  const seen: string[] = [];
  const follow = (async () => {
    for await (const e of api.streamEvents(job.id)) seen.push(e.id);
  })();
  const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
  await sleep(500);
  const claim = (await worker.claim())!;
  await sleep(300);
  const posted = await worker.events(job.id, claim.lease.token, [
    { seq: claim.next_event_seq, type: 'metrics', message: 'step 1', data: { step: 1, reward_mean: 0.5 } },
    { seq: claim.next_event_seq + 1, type: 'metrics', message: 'step 2', data: { step: 2, reward_mean: 0.75 } },
  ]);
  expect(posted.status).toBe(200);
  await sleep(500);
  await api.cancelJob(job.id);
  await follow;
  const all = (await api.events(job.id, { limit: 100, order: 'asc' })).data.map((e) => e.id);
  expect(seen).toEqual(all);
  expect(new Set(seen).size).toBe(seen.length);
  expect(streams).toBeGreaterThanOrEqual(3);
}, 30_000);
