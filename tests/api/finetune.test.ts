/** /v1/finetune (and /v1/fine_tuning/jobs): validation, tenant scoping, status transitions, events and SSE. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { TestWorker } from '../helpers/worker-client';

let t: TestApp;
let api: ReturnType<typeof client>;
let fileId: string;
beforeEach(async () => {
  t = await makeTestApp();
  api = client(t.fetch, (await t.newTenant()).key);
  fileId = ((await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
});
afterEach(() => t.close());

async function rejected(res: Response, status: number, param: string | null, message?: RegExp) {
  expect(res.status).toBe(status);
  const { error } = (await res.json()) as { error: { message: string; param: string | null; type: string; code: string } };
  expect(error.param).toBe(param);
  if (message) expect(error.message).toMatch(message);
  expect(t.rows().jobs).toBe(0);
  expect(t.rows().job_events).toBe(0);
  return error;
}

describe('create', () => {
  it('creates_a_queued_job_with_auto_hyperparameters_and_defaults', async () => {
    const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId });
    expect(res.status).toBe(200);
    const job = (await res.json()) as Record<string, any>;
    expect(job).toMatchObject({
      object: 'fine_tuning.job',
      status: 'queued',
      model: 'tiny-arith',
      training_file: fileId,
      validation_file: null,
      grader: { type: 'math' },
      fine_tuned_model: null,
      attempts: 0,
    });
    expect(job.method.type).toBe('soft_grpo');
    // "auto" is resolved at create (tests/api/create-checks.test.ts): the base model recommends group_size 4
    expect(job.method.hyperparameters).toMatchObject({ batch_size: 2, mini_batch_size: 1, n_steps: 1, group_size: 4, loss: 'soft_grpo' });
    expect(Object.keys(job.method.hyperparameters)).toHaveLength(35);
    expect(Number.isSafeInteger(job.seed)).toBe(true);
    expect(t.rows().jobs).toBe(1);
  });

  it('keeps_given_hyperparameters_grader_suffix_seed_and_metadata', async () => {
    const res = await api.post('/v1/fine_tuning/jobs', {
      model: 'tiny-arith',
      training_file: fileId,
      validation_file: fileId,
      method: { type: 'grpo', hyperparameters: { n_steps: 10, batch_size: 8, mini_batch_size: 4, top_p: 0.9, cold_stop_entropy: null, loss: 'grpo' } },
      grader: { type: 'regex', pattern: '^4\\d$' },
      suffix: 'run-1',
      seed: 2 ** 40,
      metadata: { team: 'a' },
    });
    expect(res.status).toBe(200);
    const job = (await res.json()) as Record<string, any>;
    expect(job.method).toMatchObject({ type: 'grpo', hyperparameters: { n_steps: 10, top_p: 0.9, cold_stop_entropy: null, group_size: 4 } });
    expect(job).toMatchObject({ grader: { type: 'regex', pattern: '^4\\d$' }, suffix: 'run-1', seed: 2 ** 40, metadata: { team: 'a' } });
    // The same resource under both paths.
    expect((await api.get(`/v1/finetune/${job.id}`)).status).toBe(200);
  });

  it('rejects_malformed_json', async () => {
    await rejected(await api.post('/v1/finetune', '{"model": "tiny-arith",'), 400, null, /Malformed JSON/);
  });

  it('rejects_wrong_types_naming_the_field', async () => {
    await rejected(await api.post('/v1/finetune', { model: 42, training_file: fileId }), 400, 'model');
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith' }), 400, 'training_file', /is required/);
    await rejected(
      await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, method: { hyperparameters: { group_size: 1 } } }),
      400,
      'method.hyperparameters.group_size',
    );
    await rejected(
      await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, method: { hyperparameters: { batch_size: 4, mini_batch_size: 8 } } }),
      400,
      'method.hyperparameters.mini_batch_size',
    );
    // the trainer needs a sampled answer phase (a greedy answer has no policy gradient): caught here, not by the worker
    await rejected(
      await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, method: { hyperparameters: { answer_temperature: 0 } } }),
      400,
      'method.hyperparameters.answer_temperature',
    );
    await rejected(
      await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, method: { hyperparameters: { warp_speed: 9 } } }),
      400,
      'method.hyperparameters.warp_speed',
      /^method\.hyperparameters\.warp_speed: is not a known field$/,
    );
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, grader: { type: 'regex', pattern: '(' } }), 400, 'grader.pattern');
    // the regex dialect (src/engine/safe-regex.ts): no backreferences, at most 512 characters, size at most 1000
    for (const pattern of ['(a)\\1', 'a'.repeat(513), '\\p{L}{1000}'])
      await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, grader: { type: 'regex', pattern } }), 400, 'grader.pattern');
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, suffix: 'a:b' }), 400, 'suffix');
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, seed: -1 }), 400, 'seed');
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, method: { type: 'grpo', hyperparameters: { loss: 'soft_grpo' } } }), 400, 'method.hyperparameters.loss');
  });

  it('rejects_a_non_json_content_type_with_415', async () => {
    const res = await t.fetch('http://localhost/v1/finetune', {
      method: 'POST',
      headers: { authorization: `Bearer ${(await t.newTenant('b')).key}`, 'content-type': 'text/plain' },
      body: 'model=tiny-arith',
    });
    expect(res.status).toBe(415);
    expect(t.rows().jobs).toBe(0);
  });

  it('rejects_an_unknown_model_naming_model', async () => {
    const err = await rejected(await api.post('/v1/finetune', { model: 'gpt-9', training_file: fileId }), 404, 'model');
    expect(err.code).toBe('model_not_found');
  });

  it('rejects_a_missing_file_and_another_tenants_file_with_404', async () => {
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: 'file-nope' }), 404, 'training_file');
    const other = client(t.fetch, (await t.newTenant('other')).key);
    await rejected(await other.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId }), 404, 'training_file');
    await rejected(await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, validation_file: 'file-x' }), 404, 'validation_file');
  });

  it('rejects_an_oversized_body_with_413', async () => {
    const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, metadata: { a: 'x'.repeat(2 * 1024 * 1024) } });
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe('body_too_large');
    expect(t.rows().jobs).toBe(0);
  });
});

describe('list, retrieve, tenant scoping', () => {
  it('lists_jobs_newest_first_with_pagination', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      t.clock.advance(1);
      ids.push(((await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any).id);
    }
    const p1 = (await (await api.get('/v1/finetune?limit=2')).json()) as any;
    expect(p1.data.map((j: any) => j.id)).toEqual([ids[2], ids[1]]);
    expect(p1.has_more).toBe(true);
    const p2 = (await (await api.get(`/v1/fine_tuning/jobs?limit=2&after=${p1.last_id}`)).json()) as any;
    expect(p2.data.map((j: any) => j.id)).toEqual([ids[0]]);
    expect(p2.has_more).toBe(false);
  });

  it('answers_404_for_another_tenants_job_everywhere', async () => {
    const job = (await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any;
    const other = client(t.fetch, (await t.newTenant('other')).key);
    for (const res of [
      await other.get(`/v1/finetune/${job.id}`),
      await other.get(`/v1/finetune/${job.id}/events`),
      await other.get(`/v1/finetune/${job.id}/checkpoints`),
      await other.post(`/v1/finetune/${job.id}/cancel`),
      await other.post(`/v1/finetune/${job.id}/pause`),
      await other.post(`/v1/finetune/${job.id}/resume`),
    ])
      expect(res.status).toBe(404);
    expect(((await (await other.get('/v1/finetune')).json()) as any).data).toEqual([]);
    expect(((await (await api.get(`/v1/finetune/${job.id}`)).json()) as any).status).toBe('queued');
  });
});

describe('status transitions', () => {
  const create = async () => ((await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any).id as string;

  it('pauses_a_queued_job_at_once_and_resumes_it_to_the_queue', async () => {
    const id = await create();
    expect(((await (await api.post(`/v1/finetune/${id}/pause`)).json()) as any).status).toBe('paused');
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    expect(await worker.claim()).toBeNull();
    expect(((await (await api.post(`/v1/finetune/${id}/resume`)).json()) as any).status).toBe('queued');
    expect((await worker.claim())?.job.id).toBe(id);
  });

  it('answers_409_for_illegal_transitions', async () => {
    const id = await create();
    const res = await api.post(`/v1/finetune/${id}/resume`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as any).error).toMatchObject({ code: 'invalid_job_status', message: "Cannot resume a job whose status is 'queued'." });
    expect((await api.post(`/v1/finetune/${id}/cancel`)).status).toBe(200);
    for (const action of ['cancel', 'pause', 'resume']) expect((await api.post(`/v1/finetune/${id}/${action}`)).status).toBe(409);
  });

  it('withdraws_a_pause_the_worker_has_not_acknowledged', async () => {
    const id = await create();
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    await api.post(`/v1/finetune/${id}/pause`);
    expect(((await (await api.post(`/v1/finetune/${id}/resume`)).json()) as any).status).toBe('running');
    expect(await (await worker.heartbeat(id, claim.lease.token)).json()).toMatchObject({ action: 'continue' });
    const ack = await worker.pauseAck(id, claim.lease.token);
    expect(ack.status).toBe(409);
    expect(((await ack.json()) as any).error.code).toBe('invalid_job_status');
  });
});

describe('files used by jobs', () => {
  it('refuses_to_delete_a_file_an_unfinished_job_uses_and_allows_it_after_cancel', async () => {
    const id = ((await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any).id;
    const res = await api.delete(`/v1/files/${fileId}`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as any).error.code).toBe('file_in_use');
    expect(t.rows().files).toBe(1);
    await api.post(`/v1/finetune/${id}/cancel`);
    expect((await api.delete(`/v1/files/${fileId}`)).status).toBe(200);
    // The finished job keeps naming its (deleted) training file.
    expect(((await (await api.get(`/v1/finetune/${id}`)).json()) as any).training_file).toBe(fileId);
  });
});

describe('events', () => {
  it('pages_events_newest_first_by_default_and_oldest_first_with_order_asc', async () => {
    const id = ((await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any).id;
    await api.post(`/v1/finetune/${id}/pause`);
    await api.post(`/v1/finetune/${id}/resume`);
    const all = (await (await api.get(`/v1/finetune/${id}/events?limit=100`)).json()) as any;
    expect(all.data.length).toBe(5);
    expect(all.data[0].message).toBe('Job resumed (queued).');
    expect(all.data[4].message).toMatch(/^Created fine-tuning job/);
    const p1 = (await (await api.get(`/v1/finetune/${id}/events?limit=2`)).json()) as any;
    expect(p1.has_more).toBe(true);
    const p2 = (await (await api.get(`/v1/finetune/${id}/events?limit=10&after=${p1.last_id}`)).json()) as any;
    expect([...p1.data, ...p2.data].map((e: any) => e.id)).toEqual(all.data.map((e: any) => e.id));

    const asc = (await (await api.get(`/v1/finetune/${id}/events?limit=100&order=asc`)).json()) as any;
    expect(asc.data.map((e: any) => e.id)).toEqual([...all.data].reverse().map((e: any) => e.id));
    const a1 = (await (await api.get(`/v1/finetune/${id}/events?limit=2&order=asc`)).json()) as any;
    const a2 = (await (await api.get(`/v1/finetune/${id}/events?limit=10&order=asc&after=${a1.last_id}`)).json()) as any;
    expect([...a1.data, ...a2.data].map((e: any) => e.id)).toEqual(asc.data.map((e: any) => e.id));
  });

  it('streams_events_as_sse_until_the_job_finishes_and_resumes_from_last_event_id', async () => {
    const id = ((await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId })).json()) as any).id;
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    const res = await api.get(`/v1/finetune/${id}/events?stream=true`);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
    };
    await readUntil(/Worker test-worker started/);
    await readUntil(/: keep-alive/);
    await worker.events(id, claim.lease.token, [{ seq: 0, message: 'step 1 done' }]);
    await readUntil(/step 1 done/);
    await api.post(`/v1/finetune/${id}/cancel`);
    await readUntil(/event: done/);
    expect(text).toMatch(/event: done\ndata: {"status":"cancelled"}/);
    const ids = [...text.matchAll(/^id: (ftevent-\d+)$/gm)].map((m) => m[1]);
    expect(ids.length).toBe(6);
    // Reconnecting with Last-Event-ID replays only what came after it.
    const again = await (await api.get(`/v1/finetune/${id}/events?stream=true`, { 'last-event-id': ids[3] })).text();
    expect([...again.matchAll(/^id: (ftevent-\d+)$/gm)].map((m) => m[1])).toEqual(ids.slice(4));
  });
});
