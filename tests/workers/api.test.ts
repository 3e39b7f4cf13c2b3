/**
 * The API inside the real Workers runtime: every request goes through src/entry/worker.ts (wrangler.toml's
 * bindings and vars) into a local D1 database and R2 bucket. Same routes and the same client helpers as the Node
 * tests (tests/helpers/http.ts, tests/helpers/worker-client.ts); what differs is everything below createApp:
 * D1 SQL (conditional UPDATE ... RETURNING, batch), R2 streaming, the Worker-served signed /blobs URLs, the cron
 * handler, and the configuration read from env.
 */
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import worker from '../../src/entry/worker';
import { GOOD_LINES, client, jsonl } from '../helpers/http';
import { TestWorker, sha256 } from '../helpers/worker-client';
import { BASE, blobKeys, countRows, newTenant, workerFetch } from './harness';

const expectEnvelope = async (res: Response, status: number, code?: string) => {
  expect(res.status).toBe(status);
  expect(res.headers.get('x-request-id')).toBeTruthy();
  const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  if (code) expect(body.error.code).toBe(code);
  return body.error;
};

async function uploadGood(api: ReturnType<typeof client>): Promise<string> {
  const res = await api.upload(jsonl(...GOOD_LINES));
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

async function createJob(api: ReturnType<typeof client>, fileId: string, extra: Record<string, unknown> = {}) {
  const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, ...extra });
  expect(res.status).toBe(200);
  return (await res.json()) as { id: string; status: string };
}

describe('the Worker entry', () => {
  it('answers_healthz_and_unknown_routes_with_a_request_id', async () => {
    const health = await workerFetch('/healthz');
    expect(health.status).toBe(200);
    expect(health.headers.get('x-request-id')).toBeTruthy();
    await expectEnvelope(await workerFetch('/nope'), 404, 'route_not_found');
    // Under /v1 the key is checked first: no route listing for anonymous callers.
    await expectEnvelope(await workerFetch('/v1/nope'), 401);
  });

  it('serves_the_openapi_document', async () => {
    const res = await workerFetch('/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/v1/finetune');
  });

  it('lists_the_base_model_uploaded_to_r2', async () => {
    const { key } = await newTenant();
    const res = await client(workerFetch, key, BASE).get('/v1/models/tiny-arith/files');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { name: string; bytes: number; sha256: string }[] };
    const names = body.data.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(['config.json', 'manifest.json', 'tokenizer.json']));
    const stored = await env.BLOBS.get('models/tiny-arith/config.json');
    const config = body.data.find((f) => f.name === 'config.json')!;
    expect(config.sha256).toBe(sha256(await stored!.text()));
  });
});

describe('credentials and tenant scoping', () => {
  it('refuses_missing_and_invalid_keys_with_401', async () => {
    const none = await workerFetch('/v1/files');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    await expectEnvelope(none, 401, 'missing_api_key');
    await expectEnvelope(await client(workerFetch, 'sk-not-a-key', BASE).get('/v1/files'), 401, 'invalid_api_key');
  });

  it('keeps_user_keys_off_internal_and_the_worker_token_off_v1', async () => {
    const { key } = await newTenant();
    await expectEnvelope(await client(workerFetch, key, BASE).post('/internal/jobs/claim', { worker_id: 'w' }), 403);
    await expectEnvelope(await client(workerFetch, env.WORKER_TOKEN, BASE).get('/v1/files'), 401, 'invalid_api_key');
  });

  it('answers_404_for_another_tenants_file_and_job', async () => {
    const a = client(workerFetch, (await newTenant('a')).key, BASE);
    const b = client(workerFetch, (await newTenant('b')).key, BASE);
    const fileId = await uploadGood(a);
    const job = await createJob(a, fileId);
    await expectEnvelope(await b.get(`/v1/files/${fileId}`), 404);
    await expectEnvelope(await b.get(`/v1/files/${fileId}/content`), 404);
    await expectEnvelope(await b.delete(`/v1/files/${fileId}`), 404);
    await expectEnvelope(await b.get(`/v1/finetune/${job.id}`), 404);
    await expectEnvelope(await b.post(`/v1/finetune/${job.id}/cancel`), 404);
    await expectEnvelope(await b.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId }), 404);
    expect((await a.get(`/v1/files/${fileId}`)).status).toBe(200);
    expect(((await (await b.get('/v1/finetune')).json()) as { data: unknown[] }).data).toEqual([]);
    await a.post(`/v1/finetune/${job.id}/cancel`);
  });
});

describe('files on D1 and R2', () => {
  it('uploads_lists_downloads_and_deletes_a_jsonl_file', async () => {
    const { key, tenantId } = await newTenant();
    const api = client(workerFetch, key, BASE);
    const content = jsonl(...GOOD_LINES);
    const res = await api.upload(content, 'train.jsonl');
    expect(res.status).toBe(200);
    const file = (await res.json()) as { id: string; bytes: number; examples: number; sha256: string; filename: string };
    expect(file).toMatchObject({ bytes: new TextEncoder().encode(content).length, examples: 2, sha256: sha256(content), filename: 'train.jsonl' });
    expect(await blobKeys(`files/${tenantId}/`)).toEqual([`files/${tenantId}/${file.id}`]);

    const list = (await (await api.get('/v1/files')).json()) as { object: string; data: { id: string }[]; has_more: boolean };
    expect(list.object).toBe('list');
    expect(list.data.map((f) => f.id)).toEqual([file.id]);
    expect(list.has_more).toBe(false);
    expect(((await (await api.get(`/v1/files/${file.id}`)).json()) as { id: string }).id).toBe(file.id);
    const download = await api.get(`/v1/files/${file.id}/content`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe(content);

    const deleted = await api.delete(`/v1/files/${file.id}`);
    expect(await deleted.json()).toEqual({ id: file.id, object: 'file', deleted: true });
    await expectEnvelope(await api.get(`/v1/files/${file.id}`), 404);
    expect(await blobKeys(`files/${tenantId}/`)).toEqual([]);
  });

  it('rejects_a_jsonl_line_without_answer_naming_the_line_and_leaves_nothing_behind', async () => {
    const { key, tenantId } = await newTenant();
    const api = client(workerFetch, key, BASE);
    const error = await expectEnvelope(await api.upload(jsonl(GOOD_LINES[0], { prompt: 'no answer here' })), 400);
    expect(error.message).toMatch(/line 2/);
    expect(error.message).toMatch(/answer/);
    expect(await countRows('files', 'tenant_id = ?', tenantId)).toBe(0);
    expect(await blobKeys(`files/${tenantId}/`)).toEqual([]);
  });

  it('rejects_malformed_json_bodies_with_400', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    await expectEnvelope(await api.post('/v1/finetune', '{"model": '), 400);
    await expectEnvelope(await api.post('/v1/finetune', { model: 7, training_file: [] }), 400);
  });

  it('validates_regex_graders_with_re2js_in_the_workers_runtime', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const fileId = await uploadGood(api);
    // linear-time RE2 dialect (src/engine/safe-regex.ts): a catastrophic pattern for backtracking is fine, a
    // backreference is not
    await createJob(api, fileId, { grader: { type: 'regex', pattern: '(.*.*)*X' } });
    const error = await expectEnvelope(
      await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, grader: { type: 'regex', pattern: '(a)\\1' } }),
      400,
    );
    expect(error.param).toBe('grader.pattern');
  });
});

describe('fine-tuning jobs on D1', () => {
  it('creates_lists_retrieves_and_cancels_a_job', async () => {
    const { key, tenantId } = await newTenant();
    const api = client(workerFetch, key, BASE);
    const fileId = await uploadGood(api);
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push(await createJob(api, fileId, { suffix: `run${i}` }));
    expect(jobs[0]!.status).toBe('queued');

    const page = (await (await api.get('/v1/finetune?limit=2')).json()) as { data: { id: string }[]; has_more: boolean };
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const rest = (await (await api.get(`/v1/finetune?limit=2&after=${page.data[1]!.id}`)).json()) as {
      data: { id: string }[];
      has_more: boolean;
    };
    expect(rest.has_more).toBe(false);
    expect(new Set([...page.data, ...rest.data].map((j) => j.id))).toEqual(new Set(jobs.map((j) => j.id)));

    const one = (await (await api.get(`/v1/fine_tuning/jobs/${jobs[0]!.id}`)).json()) as { id: string; model: string };
    expect(one).toMatchObject({ id: jobs[0]!.id, model: 'tiny-arith' });
    for (const j of jobs) {
      const cancelled = await api.post(`/v1/finetune/${j.id}/cancel`);
      expect(((await cancelled.json()) as { status: string }).status).toBe('cancelled');
    }
    await expectEnvelope(await api.post(`/v1/finetune/${jobs[0]!.id}/resume`), 409);
    const events = (await (await api.get(`/v1/finetune/${jobs[0]!.id}/events`)).json()) as { data: { message: string }[] };
    expect(events.data.length).toBeGreaterThan(0);
    expect(await countRows('jobs', 'tenant_id = ?', tenantId)).toBe(3);
  });

  it('honours_idempotency_keys_on_create', async () => {
    const { key, tenantId } = await newTenant();
    const api = client(workerFetch, key, BASE);
    const fileId = await uploadGood(api);
    const body = { model: 'tiny-arith', training_file: fileId, seed: 7 };
    const first = await api.post('/v1/finetune', body, { 'idempotency-key': 'create-1' });
    const again = await api.post('/v1/finetune', body, { 'idempotency-key': 'create-1' });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const [a, b] = (await Promise.all([first.json(), again.json()])) as { id: string }[];
    expect(b!.id).toBe(a!.id);
    await expectEnvelope(await api.post('/v1/finetune', { ...body, seed: 8 }, { 'idempotency-key': 'create-1' }), 409);
    expect(await countRows('jobs', 'tenant_id = ?', tenantId)).toBe(1);
    await api.post(`/v1/finetune/${a!.id}/cancel`);
  });

  it('rejects_an_unknown_model_and_a_missing_file_without_writing_a_row', async () => {
    const { key, tenantId } = await newTenant();
    const api = client(workerFetch, key, BASE);
    const fileId = await uploadGood(api);
    const unknown = await api.post('/v1/finetune', { model: 'no-such-model', training_file: fileId });
    expect([400, 404]).toContain(unknown.status);
    expect((await expectEnvelope(unknown, unknown.status)).param).toBe('model');
    const missing = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: 'file-doesnotexist' });
    expect([400, 404]).toContain(missing.status);
    expect((await expectEnvelope(missing, missing.status)).param).toBe('training_file');
    expect(await countRows('jobs', 'tenant_id = ?', tenantId)).toBe(0);
  });
});

describe('the worker protocol on D1, R2 and the cron trigger', () => {
  // Claims take any queued job: start each test from an empty queue.
  beforeEach(async () => {
    await env.DB.prepare("update jobs set status = 'cancelled' where status = 'queued'").run();
  });

  it('runs_a_job_from_claim_to_success_with_a_checkpoint_in_r2', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const content = jsonl(...GOOD_LINES);
    const fileRes = await api.upload(content);
    const fileId = ((await fileRes.json()) as { id: string }).id;
    const job = await createJob(api, fileId, { suffix: 'edge' });
    const gpu = new TestWorker(workerFetch, env.WORKER_TOKEN, 'gpu-0', BASE);

    const claim = (await gpu.claim())!;
    expect(claim.job.id).toBe(job.id);
    expect(claim.attempt).toBe(1);
    // worker-hmac mode: the signed URL points at this Worker's /blobs route, which streams from R2.
    expect(new URL(claim.training_file.url).pathname.startsWith('/blobs/')).toBe(true);
    expect(sha256(await gpu.download(claim.training_file.url))).toBe(claim.training_file.sha256);
    const config = claim.base_model.files.find((f) => f.name === 'config.json')!;
    expect(sha256(await gpu.download(config.url))).toBe(config.sha256);

    const beat = await gpu.heartbeat(job.id, claim.lease.token, 1);
    expect(((await beat.json()) as { action: string }).action).toBe('continue');
    const events = [{ seq: claim.next_event_seq, message: 'step 1', type: 'metrics', data: { step: 1, reward: 0.5, step_tokens: 64 } }];
    expect(await (await gpu.events(job.id, claim.lease.token, events)).json()).toEqual({ accepted: 1, duplicates: 0 });
    expect(await (await gpu.events(job.id, claim.lease.token, events)).json()).toEqual({ accepted: 0, duplicates: 1 });

    const weights = new Uint8Array(70_000).map((_, i) => (i * 7) & 0xff);
    const registered = await gpu.checkpoint(job.id, claim.lease.token, 1, { 'model.safetensors': weights, 'manifest.json': '{}' }, { reward: 0.5 });
    expect(registered.status).toBe(200);
    const stored = await env.BLOBS.list({ prefix: `checkpoints/${job.id}/` });
    expect(stored.objects.map((o) => o.size).sort((x, y) => x - y)).toEqual([2, 70_000]);

    const finished = await gpu.finish(job.id, claim.lease.token);
    expect(((await finished.json()) as { status: string }).status).toBe('succeeded');
    const done = (await (await api.get(`/v1/finetune/${job.id}`)).json()) as { status: string; fine_tuned_model: string };
    expect(done.status).toBe('succeeded');
    expect(done.fine_tuned_model).toBe(`ft:tiny-arith:edge:${job.id}`);
    const ckpts = (await (await api.get(`/v1/finetune/${job.id}/checkpoints`)).json()) as { data: { step_number: number }[] };
    expect(ckpts.data.map((c) => c.step_number)).toEqual([1]);
    const models = (await (await api.get('/v1/models')).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(['tiny-arith', done.fine_tuned_model]));
    const log = (await (await api.get(`/v1/finetune/${job.id}/events?limit=100`)).json()) as { data: { message: string }[] };
    expect(log.data.map((e) => e.message)).toContain('step 1');
    // OpenAI's fields at success: the tokens the worker reported, and the step-metrics CSV as a file in R2
    const result = (await (await api.get(`/v1/fine_tuning/jobs/${job.id}`)).json()) as { trained_tokens: number; result_files: string[] };
    expect(result.trained_tokens).toBe(64);
    const csv = await api.get(`/v1/files/${result.result_files[0]}/content`);
    expect(await csv.text()).toBe('step,reward,step_tokens\n1,0.5,64\n');
  });

  it('writes_one_event_per_transition_and_nothing_for_an_illegal_one_on_d1', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const job = await createJob(api, await uploadGood(api));
    const count = async () =>
      ((await env.DB.prepare('select count(*) as n from job_events where job_id = ?').bind(job.id).first()) as { n: number }).n;
    const created = await count();
    for (const action of ['pause', 'resume', 'cancel']) expect((await api.post(`/v1/finetune/${job.id}/${action}`)).status).toBe(200);
    expect(await count()).toBe(created + 3);
    await expectEnvelope(await api.post(`/v1/finetune/${job.id}/resume`), 409, 'invalid_job_status');
    expect(await count()).toBe(created + 3);
    const newest = (await (await api.get(`/v1/finetune/${job.id}/events?limit=1`)).json()) as { data: { message: string }[] };
    expect(newest.data[0].message).toBe('Job cancelled by the user.');
  });

  it('filters_jobs_by_metadata_and_refuses_an_unknown_cursor_on_d1', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const fileId = await uploadGood(api);
    const tagged = await createJob(api, fileId, { metadata: { team: 'edge' } });
    await createJob(api, fileId);
    const list = (await (await api.get('/v1/fine_tuning/jobs?metadata[team]=edge')).json()) as { data: { id: string }[] };
    expect(list.data.map((j) => j.id)).toEqual([tagged.id]);
    const err = await expectEnvelope(await api.get('/v1/fine_tuning/jobs?after=ftjob-nope'), 400, 'invalid_cursor');
    expect(err.param).toBe('after');
  });

  it('never_gives_one_job_to_two_concurrent_claims', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const fileId = await uploadGood(api);
    const created = [];
    for (let i = 0; i < 3; i++) created.push((await createJob(api, fileId)).id);
    const workers = Array.from({ length: 6 }, (_, i) => new TestWorker(workerFetch, env.WORKER_TOKEN, `gpu-${i}`, BASE));
    const claims = await Promise.all(workers.map((w) => w.claim()));
    const got = claims.filter((c) => c !== null).map((c) => c!.job.id);
    expect(got.sort()).toEqual([...created].sort());
    expect(claims.filter((c) => c === null)).toHaveLength(3);
  });

  it('returns_an_expired_lease_to_the_queue_from_the_cron_handler_and_counts_attempts', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const job = await createJob(api, await uploadGood(api));
    const gpu = new TestWorker(workerFetch, env.WORKER_TOKEN, 'gpu-lost', BASE);
    const first = (await gpu.claim())!;
    expect(first.job.id).toBe(job.id);

    // The worker goes silent and its lease runs out (moved into the past rather than waiting LEASE_SECONDS).
    await env.DB.prepare('update jobs set lease_expires_at = ? where id = ?').bind(Date.now() - 1000, job.id).run();
    const ctx = createExecutionContext();
    // The sweep does not read the base models: one that is listed but not uploaded does not stop it.
    const scheduledEnv = { ...env, BASE_MODELS: 'tiny-arith,not-uploaded' };
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '* * * * *' }), scheduledEnv, ctx);
    await waitOnExecutionContext(ctx);

    expect(((await (await api.get(`/v1/finetune/${job.id}`)).json()) as { status: string }).status).toBe('queued');
    const swept = (await (await api.get(`/v1/finetune/${job.id}/events?limit=1`)).json()) as { data: { message: string }[] };
    expect(swept.data[0].message).toBe('Lease expired on attempt 1; job re-queued to resume from its last checkpoint.');
    await expectEnvelope(await gpu.heartbeat(job.id, first.lease.token), 409);
    const second = (await new TestWorker(workerFetch, env.WORKER_TOKEN, 'gpu-next', BASE).claim())!;
    expect(second.job.id).toBe(job.id);
    expect(second.attempt).toBe(2);
    expect(second.lease.token).not.toBe(first.lease.token);
    await api.post(`/v1/finetune/${job.id}/cancel`);
  });
});

describe('configuration from env', () => {
  const call = async (path: string, over: Partial<typeof env>, init?: RequestInit) => {
    const ctx = createExecutionContext();
    const request = new Request(`${BASE}${path}`, init) as Parameters<typeof worker.fetch>[0];
    const res = await worker.fetch(request, { ...env, ...over }, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };

  it('signs_r2_presigned_urls_when_configured', async () => {
    await env.DB.prepare("update jobs set status = 'cancelled' where status = 'queued'").run();
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const job = await createJob(api, await uploadGood(api));
    const over = {
      BLOB_URL_MODE: 'r2-presigned',
      R2_ACCOUNT_ID: 'acct0123',
      R2_ACCESS_KEY_ID: 'AKIDTEST',
      R2_SECRET_ACCESS_KEY: 'secret-test',
    };
    const res = await call('/internal/jobs/claim', over, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.WORKER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ worker_id: 'gpu-r2' }),
    });
    expect(res.status).toBe(200);
    const claim = (await res.json()) as { job: { id: string }; training_file: { url: string } };
    expect(claim.job.id).toBe(job.id);
    const url = new URL(claim.training_file.url);
    expect(url.host).toBe('acct0123.r2.cloudflarestorage.com');
    expect(url.pathname.startsWith(`/${env.R2_BUCKET_NAME}/files/`)).toBe(true);
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^AKIDTEST\//);
    await api.post(`/v1/finetune/${job.id}/cancel`);
  });

  it('fails_closed_with_the_envelope_when_a_mode_lacks_its_secrets_or_a_model_is_missing', async () => {
    const broken = [
      { BLOB_URL_MODE: 'r2-presigned' },
      { BLOB_URL_MODE: 'bogus' },
      { SIGNING_SECRET: '' },
      { WORKER_TOKEN: '' },
      { REMOTE_ENGINES: 'not json' },
      { REMOTE_ENGINES: '{"tiny-arith": {"url": "ftp://gpu", "context_length": 512}}' },
      { REMOTE_ENGINES: '{"tiny-arith": {"url": "https://gpu", "context_length": 0}}' },
    ];
    for (const over of broken) {
      await expectEnvelope(await call('/healthz', over), 500, 'misconfigured');
    }
    expect((await call('/healthz', {})).status).toBe(200);
  });

  it('offers_every_model_folder_in_the_bucket_when_base_models_is_a_star', async () => {
    await env.BLOBS.put('models/second-model/config.json', '{}');
    await env.BLOBS.put('models/second-model/manifest.json', JSON.stringify({ format: 'softgrpo-model/1', base: 'second-model', files: { 'config.json': '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' } }));
    const { key } = await newTenant();
    const res = await call('/v1/models', { BASE_MODELS: '*' }, { headers: { authorization: `Bearer ${key}` } });
    const ids = ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['tiny-arith', 'second-model']));
    await env.BLOBS.delete(['models/second-model/config.json', 'models/second-model/manifest.json']);
  });

  it('answers_healthz_and_every_route_when_a_listed_base_model_is_not_uploaded', async () => {
    const over = { BASE_MODELS: 'tiny-arith,not-uploaded' };
    const health = await call('/healthz', over);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { ok: boolean; missing_models: string[] };
    expect(body.ok).toBe(true);
    expect(body.missing_models).toEqual([expect.stringMatching(/^not-uploaded: no models\/not-uploaded\/manifest.json/)]);
    const { key } = await newTenant();
    const auth = { headers: { authorization: `Bearer ${key}` } };
    const models = (await (await call('/v1/models', over, auth)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toContain('tiny-arith');
    expect(models.data.map((m) => m.id)).not.toContain('not-uploaded');
    await expectEnvelope(await call('/v1/models/not-uploaded', over, auth), 404);
  });

  it('answers_404_for_an_unknown_model_whatever_the_engine_configuration', async () => {
    const { key } = await newTenant();
    const init = { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-model', prompt: 'What is 2+3?' }) };
    for (const over of [{ REMOTE_ENGINES: '' }, { REMOTE_ENGINES: '{"tiny-arith": {"url": "http://127.0.0.1:9", "context_length": 512}}' }]) {
      expect((await expectEnvelope(await call('/v1/reason', over, init), 404, 'model_not_found')).param).toBe('model');
    }
  });

  it('answers_503_on_reason_when_no_remote_engine_is_configured', async () => {
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const res = await api.post('/v1/reason', { model: 'tiny-arith', prompt: 'What is 2+3?' });
    expect((await expectEnvelope(res, 503, 'no_engines')).param).toBe('model');
  });
});
