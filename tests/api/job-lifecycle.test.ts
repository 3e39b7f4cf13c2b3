/**
 * The fine-tuning job lifecycle driven over real HTTP (a @hono/node-server on loopback) by a test worker that
 * speaks the /internal protocol: signed-URL downloads and uploads, leases, heartbeats, events, checkpoints.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expireLeases } from '../../src/jobs/lease-expiry';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { listen } from '../helpers/server';
import { sha256, TestWorker } from '../helpers/worker-client';

let t: TestApp;
let server: Awaited<ReturnType<typeof listen>>;
let api: ReturnType<typeof client>;
let worker: TestWorker;
const httpFetch = (url: string, init?: RequestInit) => fetch(url, init);

beforeEach(async () => {
  t = await makeTestApp();
  server = await listen(t.app);
  api = client(httpFetch, (await t.newTenant()).key, server.base);
  worker = new TestWorker(httpFetch, WORKER_TOKEN, 'worker-a', server.base);
});
afterEach(async () => {
  await server.close();
  t.close();
});

const TRAINING = jsonl(...GOOD_LINES);

async function createJob(extra: Record<string, unknown> = {}) {
  const file = (await (await api.upload(TRAINING)).json()) as { id: string };
  const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id, suffix: 'arith', seed: 7, ...extra });
  expect(res.status).toBe(200);
  return (await res.json()) as { id: string; status: string };
}

const getJob = async (id: string) => (await (await api.get(`/v1/finetune/${id}`)).json()) as Record<string, any>;
const events = async (id: string) =>
  ((await (await api.get(`/v1/finetune/${id}/events?limit=100&order=asc`)).json()) as { data: { message: string; type: string; data: any }[] }).data;

describe('job lifecycle over HTTP', () => {
  it('runs_create_claim_heartbeat_events_checkpoint_succeed', async () => {
    const job = await createJob();
    expect(job.status).toBe('queued');

    const claim = (await worker.claim())!;
    expect(claim.job.id).toBe(job.id);
    expect(claim.attempt).toBe(1);
    expect(claim.next_event_seq).toBe(0);
    expect(claim.resume_from).toBeNull();
    expect(claim.job.fine_tuned_model).toBe(`ft:tiny-arith:arith:${job.id}`);
    expect(claim.job.method.hyperparameters.group_size).toBe(4); // resolved at create: the manifest's recommendation
    // Signed downloads give the exact bytes the user uploaded, and the base model's files.
    const data = await worker.download(claim.training_file.url);
    expect(new TextDecoder().decode(data)).toBe(TRAINING);
    expect(sha256(data)).toBe(claim.training_file.sha256);
    expect(claim.base_model.manifest).toMatchObject({ base: 'tiny-arith' });
    const cfg = claim.base_model.files.find((f) => f.name === 'config.json')!;
    expect(sha256(await worker.download(cfg.url))).toBe(cfg.sha256);
    expect((await getJob(job.id)).status).toBe('running');

    const hb = await worker.heartbeat(job.id, claim.lease.token, 1);
    expect(hb.status).toBe(200);
    expect(await hb.json()).toMatchObject({ action: 'continue', status: 'running' });

    const ev = await worker.events(job.id, claim.lease.token, [
      { seq: 0, type: 'hyperparameters', message: 'resolved', data: { group_size: 4 } },
      { seq: 1, type: 'metrics', message: 'step 1', data: { step: 1, reward_mean: 0.5 } },
    ]);
    expect(await ev.json()).toEqual({ accepted: 2, duplicates: 0 });

    const ck = await worker.checkpoint(job.id, claim.lease.token, 2, { 'config.json': '{"a":1}', 'model.safetensors': new Uint8Array([1, 2, 3, 4]) }, { reward_mean: 0.75 });
    expect(ck.status).toBe(200);
    expect(await ck.json()).toMatchObject({ step_number: 2, fine_tuned_model_checkpoint: `ft:tiny-arith:arith:${job.id}:ckpt-2`, metrics: { reward_mean: 0.75 } });

    const fin = await worker.finish(job.id, claim.lease.token);
    expect(fin.status).toBe(200);
    const done = await getJob(job.id);
    expect(done).toMatchObject({ status: 'succeeded', fine_tuned_model: `ft:tiny-arith:arith:${job.id}`, trained_steps: 2 });
    expect(done.finished_at).toBeTypeOf('number');

    const messages = (await events(job.id)).map((e) => e.type);
    expect(messages).toEqual(expect.arrayContaining(['hyperparameters', 'metrics', 'checkpoint']));
    const ckpts = (await (await api.get(`/v1/finetune/${job.id}/checkpoints`)).json()) as { data: { step_number: number }[] };
    expect(ckpts.data.map((c) => c.step_number)).toEqual([2]);
    // The lease is released: the worker can no longer act on the job.
    expect((await worker.heartbeat(job.id, claim.lease.token)).status).toBe(409);
    const idle = await worker.raw('/internal/jobs/claim', { worker_id: 'w' });
    expect(idle.status).toBe(204);
    expect(idle.headers.get('retry-after')).toBe('5');
  });

  it('tells_the_worker_to_cancel_when_the_user_cancels_mid_run', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    const cancel = await api.post(`/v1/finetune/${job.id}/cancel`);
    expect(await cancel.json()).toMatchObject({ status: 'cancelled' });
    const hb = await worker.heartbeat(job.id, claim.lease.token);
    expect(await hb.json()).toMatchObject({ action: 'cancel', status: 'cancelled' });
    // The lease is gone after the cancel answer; finishing is refused.
    expect((await worker.finish(job.id, claim.lease.token)).status).toBe(409);
    expect((await getJob(job.id)).status).toBe('cancelled');
  });

  it('pauses_a_running_job_through_its_worker_and_resumes_from_the_checkpoint', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    expect(await (await api.post(`/v1/finetune/${job.id}/pause`)).json()).toMatchObject({ status: 'pausing' });
    expect(await (await worker.heartbeat(job.id, claim.lease.token)).json()).toMatchObject({ action: 'pause' });
    expect((await worker.checkpoint(job.id, claim.lease.token, 3, { 'state.pt': 'x' })).status).toBe(200);
    expect(await (await worker.pauseAck(job.id, claim.lease.token)).json()).toMatchObject({ status: 'paused' });
    expect(await worker.claim()).toBeNull();
    expect(await (await api.post(`/v1/finetune/${job.id}/resume`)).json()).toMatchObject({ status: 'queued' });
    const again = (await worker.claim())!;
    expect(again.attempt).toBe(1); // a requested pause is not a failed attempt
    expect(again.resume_from).toMatchObject({ step: 3 });
    expect(new TextDecoder().decode(await worker.download(again.resume_from!.files[0].url))).toBe('x');
  });

  it('does_not_use_up_attempts_with_pause_and_resume_cycles', async () => {
    const job = await createJob();
    for (let cycle = 0; cycle < t.deps.config.maxAttempts + 1; cycle++) {
      const claim = (await worker.claim())!;
      expect(claim.attempt).toBe(1);
      await api.post(`/v1/finetune/${job.id}/pause`);
      expect((await worker.checkpoint(job.id, claim.lease.token, cycle + 1, { 'state.pt': `s${cycle}` })).status).toBe(200);
      expect(await (await worker.pauseAck(job.id, claim.lease.token)).json()).toMatchObject({ status: 'paused' });
      expect(await (await api.post(`/v1/finetune/${job.id}/resume`)).json()).toMatchObject({ status: 'queued' });
    }
    const last = (await worker.claim())!;
    expect(last.attempt).toBe(1);
    expect(last.resume_from).toMatchObject({ step: t.deps.config.maxAttempts + 1 });
  });

  it('resumes_from_last_checkpoint_after_lease_expiry_with_the_attempt_count', async () => {
    const job = await createJob();
    const first = (await worker.claim())!;
    await worker.events(job.id, first.lease.token, [{ seq: 0, message: 'a' }, { seq: 1, message: 'b' }]);
    expect((await worker.checkpoint(job.id, first.lease.token, 5, { 'model.safetensors': 'weights@5' })).status).toBe(200);

    t.clock.advance(t.deps.config.leaseSeconds - 1);
    expect(await expireLeases(t.deps)).toEqual({ requeued: [], paused: [], failed: [] });
    t.clock.advance(2);
    expect((await expireLeases(t.deps)).requeued).toEqual([job.id]);
    expect((await getJob(job.id)).status).toBe('queued');
    // The old worker is told its lease is gone.
    const lost = await worker.heartbeat(job.id, first.lease.token);
    expect(lost.status).toBe(409);
    expect(((await lost.json()) as any).error.code).toBe('lease_lost');

    const second = (await new TestWorker(httpFetch, WORKER_TOKEN, 'worker-b', server.base).claim())!;
    expect(second.job.id).toBe(job.id);
    expect(second.attempt).toBe(2);
    expect(second.next_event_seq).toBe(2);
    expect(second.resume_from?.step).toBe(5);
    expect(new TextDecoder().decode(await worker.download(second.resume_from!.files[0].url))).toBe('weights@5');
    expect(second.lease.token).not.toBe(first.lease.token);
  });

  it('parks_a_pausing_job_whose_worker_died_as_paused', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    await api.post(`/v1/finetune/${job.id}/pause`);
    t.clock.advance(t.deps.config.leaseSeconds + 1);
    expect((await expireLeases(t.deps)).paused).toEqual([job.id]);
    expect((await getJob(job.id)).status).toBe('paused');
    expect((await worker.pauseAck(job.id, claim.lease.token)).status).toBe(409);
    await api.post(`/v1/finetune/${job.id}/resume`);
    expect((await worker.claim())?.attempt).toBe(2);
  });

  it('fails_the_job_when_the_last_attempt_loses_its_lease', async () => {
    const job = await createJob();
    for (let attempt = 1; attempt <= t.deps.config.maxAttempts; attempt++) {
      const claim = (await worker.claim())!;
      expect(claim.attempt).toBe(attempt);
      t.clock.advance(t.deps.config.leaseSeconds + 1);
      await expireLeases(t.deps);
    }
    const failed = await getJob(job.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatchObject({ code: 'worker_lost' });
    expect(await worker.claim()).toBeNull();
  });

  it('never_hands_the_same_job_to_two_concurrent_claims', async () => {
    const n = 8;
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) ids.add((await createJob()).id);
    const workers = Array.from({ length: 3 * n }, (_, i) => new TestWorker(httpFetch, WORKER_TOKEN, `w${i}`, server.base));
    const claims = await Promise.all(workers.map((w) => w.claim()));
    const got = claims.filter((c) => c !== null).map((c) => c!.job.id);
    expect(got.length).toBe(n);
    expect(new Set(got)).toEqual(ids);
  });

  it('ignores_duplicate_event_sequence_numbers', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    const batch = [{ seq: 0, message: 'one' }, { seq: 1, message: 'two' }];
    expect(await (await worker.events(job.id, claim.lease.token, batch)).json()).toEqual({ accepted: 2, duplicates: 0 });
    expect(await (await worker.events(job.id, claim.lease.token, [...batch, { seq: 2, message: 'three' }])).json()).toEqual({
      accepted: 1,
      duplicates: 2,
    });
    const worker_events = (await events(job.id)).filter((e) => ['one', 'two', 'three'].includes(e.message));
    expect(worker_events.map((e) => e.message)).toEqual(['one', 'two', 'three']);
  });

  it('appends_a_batch_larger_than_one_statement_and_dedupes_across_it', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    const batch = Array.from({ length: 100 }, (_, i) => ({ seq: i, message: `e${i}`, type: 'metrics', data: { step: i } }));
    expect(await (await worker.events(job.id, claim.lease.token, batch.slice(0, 30))).json()).toEqual({ accepted: 30, duplicates: 0 });
    expect(await (await worker.events(job.id, claim.lease.token, batch)).json()).toEqual({ accepted: 70, duplicates: 30 });
    expect(t.rows().job_events - 4).toBe(100); // + created/validated/queued/started
  });

  it('refuses_a_checkpoint_whose_blob_is_missing_or_differs', async () => {
    const job = await createJob();
    const claim = (await worker.claim())!;
    const res = await worker.raw(`/internal/jobs/${job.id}/checkpoints`, {
      lease_token: claim.lease.token,
      step: 1,
      files: [{ name: 'model.safetensors', bytes: 3, sha256: sha256('abc') }],
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toMatchObject({ param: 'files[0]', code: 'blob_missing' });
    const urls = (await (await worker.raw(`/internal/jobs/${job.id}/checkpoints/uploads`, {
      lease_token: claim.lease.token,
      step: 1,
      files: [{ name: 'model.safetensors', bytes: 3, sha256: sha256('abc') }],
    })).json()) as { files: { url: string }[] };
    // The URL is signed with the declared sha256: the store refuses other content and keeps nothing.
    const refused = await httpFetch(urls.files[0].url, { method: 'PUT', body: 'abd' });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as any).error.code).toBe('blob_sha256_mismatch');
    const bad = await worker.raw(`/internal/jobs/${job.id}/checkpoints`, {
      lease_token: claim.lease.token,
      step: 1,
      files: [{ name: 'model.safetensors', bytes: 3, sha256: sha256('abc') }],
    });
    expect(((await bad.json()) as any).error.code).toBe('blob_missing');
    expect(t.rows().checkpoints).toBe(0);
    expect((await worker.finish(job.id, claim.lease.token)).status).toBe(409);
  });

  it('requeues_a_retryable_failure_and_records_a_final_one_for_the_user', async () => {
    const job = await createJob();
    const c1 = (await worker.claim())!;
    expect(await (await worker.fail(job.id, c1.lease.token, { code: 'oom', message: 'out of GPU memory' }, true)).json()).toMatchObject({ status: 'queued' });
    const c2 = (await worker.claim())!;
    expect(c2.attempt).toBe(2);
    const res = await worker.fail(job.id, c2.lease.token, { code: 'invalid_hyperparameters', message: 'batch_size too large; use <= 8', param: 'batch_size' });
    expect(await res.json()).toMatchObject({ status: 'failed', error: { code: 'invalid_hyperparameters', param: 'batch_size' } });
  });

  it('streams_a_large_upload_over_http_and_serves_it_to_the_worker', async () => {
    const line = JSON.stringify({ prompt: 'p'.repeat(900), answer: 1 });
    const big = Array.from({ length: 3000 }, () => line).join('\n') + '\n';
    const res = await api.upload(big);
    expect(res.status).toBe(200);
    const file = (await res.json()) as { id: string; examples: number; sha256: string };
    expect(file.examples).toBe(3000);
    expect(file.sha256).toBe(sha256(big));
  });
});
