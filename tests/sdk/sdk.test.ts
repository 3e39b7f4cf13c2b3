/**
 * The TypeScript SDK (sdk/typescript) against the real app over loopback HTTP (tests/helpers: real SQLite file, real
 * blob folder): files from a path and a Blob, the fine-tune job lifecycle, events paged and streamed, models, the
 * error envelope with its request id, Idempotency-Keys and retries.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoftReasonError, retryAfterMs, type FineTuningJobEvent } from '../../sdk/typescript';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

let s: SdkServer;
beforeAll(async () => {
  s = await startSdkServer();
});
afterAll(() => s?.close());

async function uploaded() {
  return s.sdk().uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
}

describe('files', () => {
  it('uploads a JSONL file from a path and from a Blob, and lists and retrieves them', async () => {
    const api = s.sdk();
    const dir = mkdtempSync(join(tmpdir(), 'sdk-'));
    const path = join(dir, 'arith.jsonl');
    writeFileSync(path, TRAIN_JSONL);
    const fromPath = await api.uploadFile(path);
    expect(fromPath).toMatchObject({ object: 'file', filename: 'arith.jsonl', examples: 3, bytes: TRAIN_JSONL.length, purpose: 'fine-tune' });
    const fromBlob = await uploaded();
    expect(fromBlob.filename).toBe('train.jsonl');
    expect(fromBlob.sha256).toBe(fromPath.sha256);
    const list = await api.listFiles();
    expect(list.data.map((f) => f.id)).toEqual(expect.arrayContaining([fromPath.id, fromBlob.id]));
    expect((await api.getFile(fromPath.id)).id).toBe(fromPath.id);
  });

  it('surfaces a bad JSONL line as SoftReasonError with the envelope, the line number and the request id', async () => {
    const api = s.sdk({ headers: { 'x-request-id': 'req-sdk-test-0001' } });
    const before = s.t.rows().files;
    const err = await api.uploadFile(new Blob(['{"prompt":"ok","answer":1}\n{"prompt":"no answer"}\n']), { filename: 'bad.jsonl' }).catch((e) => e);
    expect(err).toBeInstanceOf(SoftReasonError);
    expect(err.status).toBe(400);
    expect(err.error.message).toMatch(/line 2/);
    expect(err.error.type).toBeTruthy();
    expect(err.requestId).toBe('req-sdk-test-0001');
    expect(err.message).toContain('req-sdk-test-0001');
    expect(s.t.rows().files).toBe(before);
  });

  it('answers 401 with the envelope for a wrong key, and 404 for an unknown file', async () => {
    const bad = await s.sdk({ apiKey: 'sk-not-a-real-key' }).listFiles().catch((e) => e);
    expect(bad).toBeInstanceOf(SoftReasonError);
    expect(bad.status).toBe(401);
    expect(bad.requestId).toMatch(/\S/);
    const missing = await s.sdk().getFile('file-doesnotexist').catch((e) => e);
    expect(missing.status).toBe(404);
    expect(missing.error.message).toMatch(/file/i);
  });
});

describe('fine-tune jobs', () => {
  it('creates, lists, pauses, resumes and cancels a job; waitForJob returns it cancelled', async () => {
    const api = s.sdk();
    const file = await uploaded();
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id, method: { type: 'soft_grpo', hyperparameters: { n_steps: 3 } }, suffix: 'sdk' });
    expect(job.object).toBe('fine_tuning.job');
    expect(job.status).toBe('queued');
    expect((await api.listJobs()).data.map((j) => j.id)).toContain(job.id);
    expect((await api.pauseJob(job.id)).status).toBe('paused');
    expect((await api.resumeJob(job.id)).status).toBe('queued');
    expect((await api.cancelJob(job.id)).status).toBe('cancelled');
    const statuses: string[] = [];
    const done = await api.waitForJob(job.id, { pollMs: 10, timeoutMs: 5000, onStatus: (j) => statuses.push(j.status) });
    expect(done.status).toBe('cancelled');
    expect(statuses).toEqual(['cancelled']);
    const illegal = await api.pauseJob(job.id).catch((e) => e);
    expect(illegal).toBeInstanceOf(SoftReasonError);
    expect(illegal.status).toBe(409);
    expect(illegal.code).toBe('invalid_job_status');
  });

  it('streams the events of a finished job to the end, equal to the paged list, and resumes after an event id', async () => {
    const api = s.sdk();
    const file = await uploaded();
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    await api.cancelJob(job.id);
    const streamed: FineTuningJobEvent[] = [];
    for await (const e of api.streamEvents(job.id)) streamed.push(e);
    const paged = await api.events(job.id, { limit: 100, order: 'asc' });
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed).toEqual(paged.data);
    expect(streamed.some((e) => e.message.toLowerCase().includes('cancel') || JSON.stringify(e.data ?? {}).includes('cancelled'))).toBe(true);
    const rest: FineTuningJobEvent[] = [];
    for await (const e of api.streamEvents(job.id, { after: streamed[0].id })) rest.push(e);
    expect(rest).toEqual(streamed.slice(1));
  });

  it('follows a live job: events posted while streaming arrive, and the stream ends when the job ends', async () => {
    const api = s.sdk();
    const file = await uploaded();
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    const seen: string[] = [];
    const follow = (async () => {
      for await (const e of api.streamEvents(job.id)) seen.push(e.id);
    })();
    await new Promise((r) => setTimeout(r, 100));
    await api.cancelJob(job.id);
    await follow;
    const all = await api.events(job.id, { limit: 100, order: 'asc' });
    expect(seen).toEqual(all.data.map((e) => e.id));
  });

  it('returns the same job for the same Idempotency-Key, and makes a new key per call by default', async () => {
    const api = s.sdk();
    const file = await uploaded();
    const body = { model: 'tiny-arith', training_file: file.id };
    const jobs0 = s.t.rows().jobs;
    const a = await api.createJob(body, { idempotencyKey: 'sdk-key-1' });
    const b = await api.createJob(body, { idempotencyKey: 'sdk-key-1' });
    expect(b.id).toBe(a.id);
    expect(s.t.rows().jobs).toBe(jobs0 + 1);
    const c = await api.createJob(body);
    const d = await api.createJob(body);
    expect(new Set([a.id, c.id, d.id]).size).toBe(3);
    const reused = await api.createJob({ ...body, suffix: 'other' }, { idempotencyKey: 'sdk-key-1' }).catch((e) => e);
    expect(reused.status).toBe(409);
  });
});

describe('retries', () => {
  it('retries a POST after 503 + retry-after with the same Idempotency-Key, creating one job', async () => {
    const seen: Request[] = [];
    let failFirst = true;
    const api = s.sdk({
      fetch: async (req) => {
        seen.push(req.clone() as Request);
        if (failFirst) {
          failFirst = false;
          return new Response(JSON.stringify({ error: { message: 'busy', type: 'server_error', param: null, code: 'busy' } }), {
            status: 503,
            headers: { 'retry-after': '0', 'content-type': 'application/json' },
          });
        }
        return fetch(req);
      },
    });
    const file = await uploaded();
    const jobs0 = s.t.rows().jobs;
    const job = await api.createJob({ model: 'tiny-arith', training_file: file.id });
    expect(job.status).toBe('queued');
    expect(seen).toHaveLength(2);
    const keys = seen.map((r) => r.headers.get('idempotency-key'));
    expect(keys[0]).toMatch(/^sdk-/);
    expect(keys[1]).toBe(keys[0]);
    expect(await seen[1].json()).toEqual({ model: 'tiny-arith', training_file: file.id });
    expect(s.t.rows().jobs).toBe(jobs0 + 1);
  });

  it('retries an upload from a path with the same key, re-reading the file for the second attempt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdk-'));
    const path = join(dir, 'retry.jsonl');
    writeFileSync(path, TRAIN_JSONL);
    const keys: (string | null)[] = [];
    const api = s.sdk({
      fetch: async (req) => {
        keys.push(req.headers.get('idempotency-key'));
        if (keys.length === 1) return new Response('{"error":{"message":"busy","type":"server_error","param":null,"code":"busy"}}', { status: 503, headers: { 'retry-after': '0' } });
        return fetch(req);
      },
    });
    const files0 = s.t.rows().files;
    const file = await api.uploadFile(path);
    expect(file).toMatchObject({ filename: 'retry.jsonl', bytes: TRAIN_JSONL.length, examples: 3 });
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^sdk-/);
    expect(keys[1]).toBe(keys[0]);
    expect(s.t.rows().files).toBe(files0 + 1);
  });

  it('gives up after maxRetries on the real 503 of a deployment without engines, with the error envelope', async () => {
    let calls = 0;
    const api = s.sdk({ maxRetries: 2, baseDelayMs: 1, fetch: (r) => (calls++, fetch(r)) });
    const err = await api.reason({ model: 'tiny-arith', prompt: 'What is 1+1?' }).catch((e) => e);
    expect(err).toBeInstanceOf(SoftReasonError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('no_engines');
    expect(calls).toBe(3);
  });

  it('does not wait for a retry-after longer than maxRetryDelayMs, and reads HTTP-date retry-after', async () => {
    let calls = 0;
    const api = s.sdk({
      maxRetryDelayMs: 1000,
      fetch: async () => (calls++, new Response('{"error":{"message":"slow down","type":"rate_limit","param":null,"code":"rate_limited"}}', { status: 429, headers: { 'retry-after': '120' } })),
    });
    const err = await api.listModels().catch((e) => e);
    expect(err.status).toBe(429);
    expect(err.code).toBe('rate_limited');
    expect(calls).toBe(1);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('2', now)).toBe(2000);
    expect(retryAfterMs('soon', now)).toBeNull();
  });
});

describe('models', () => {
  it('lists the base model and retrieves it', async () => {
    const api = s.sdk();
    const list = await api.listModels();
    expect(list.object).toBe('list');
    const base = list.data.find((m) => m.id === 'tiny-arith');
    expect(base).toMatchObject({ kind: 'base', root: 'tiny-arith' });
    expect((await api.getModel('tiny-arith')).id).toBe('tiny-arith');
    const missing = await api.getModel('no-such-model').catch((e) => e);
    expect(missing.status).toBe(404);
  });
});
