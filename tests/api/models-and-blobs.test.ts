/** /v1/models (base + fine-tuned names, signed file URLs) and the signed /blobs routes. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { sha256, TestWorker } from '../helpers/worker-client';

let t: TestApp;
let api: ReturnType<typeof client>;
beforeEach(async () => {
  t = await makeTestApp();
  api = client(t.fetch, (await t.newTenant()).key);
});
afterEach(() => t.close());

async function trainedJob(suffix: string | null, steps: number[]) {
  const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
  const job = (await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id, suffix })).json()) as { id: string };
  const worker = new TestWorker(t.fetch, WORKER_TOKEN);
  const claim = (await worker.claim())!;
  for (const step of steps) {
    t.clock.advance(1);
    expect((await worker.checkpoint(job.id, claim.lease.token, step, { 'model.onnx': `onnx@${step}`, 'manifest.json': `{"step":${step}}` })).status).toBe(200);
  }
  return { job, worker, claim };
}

describe('models', () => {
  it('lists_base_models_from_model_folders', async () => {
    const list = (await (await api.get('/v1/models')).json()) as { data: any[] };
    expect(list.data).toEqual([expect.objectContaining({ id: 'tiny-arith', object: 'model', kind: 'base', owned_by: 'system', root: 'tiny-arith' })]);
    const files = (await (await api.get('/v1/models/tiny-arith/files')).json()) as { data: { name: string; url: string; sha256: string }[] };
    expect(files.data.map((f) => f.name)).toEqual(['config.json', 'manifest.json', 'tokenizer_config.json', 'tokenizer.json']);
    for (const f of files.data) expect(sha256(new Uint8Array(await (await t.fetch(f.url)).arrayBuffer()))).toBe(f.sha256);
  });

  it('lists_fine_tuned_models_and_checkpoints_once_checkpoints_exist', async () => {
    const { job } = await trainedJob('arith', [1, 2]);
    const ids = ((await (await api.get('/v1/models')).json()) as { data: { id: string }[] }).data.map((m) => m.id);
    const ft = `ft:tiny-arith:arith:${job.id}`;
    expect(ids).toEqual(['tiny-arith', ft, `${ft}:ckpt-2`, `${ft}:ckpt-1`]);
    const latest = (await (await api.get(`/v1/models/${ft}`)).json()) as any;
    expect(latest).toMatchObject({ kind: 'fine-tuned', step: 2, job_id: job.id, root: 'tiny-arith' });
    const files = (await (await api.get(`/v1/models/${ft}:ckpt-1/files`)).json()) as { data: { name: string; url: string }[] };
    const onnx = files.data.find((f) => f.name === 'model.onnx')!;
    expect(await (await t.fetch(onnx.url)).text()).toBe('onnx@1');
  });

  it('names_models_of_jobs_without_a_suffix_with_an_empty_suffix_part', async () => {
    const { job } = await trainedJob(null, [1]);
    expect((await api.get(`/v1/models/ft:tiny-arith::${job.id}`)).status).toBe(200);
  });

  it('hides_another_tenants_fine_tuned_models', async () => {
    const { job } = await trainedJob('mine', [1]);
    const other = client(t.fetch, (await t.newTenant('other')).key);
    const ft = `ft:tiny-arith:mine:${job.id}`;
    expect((await other.get(`/v1/models/${ft}`)).status).toBe(404);
    expect((await other.get(`/v1/models/${ft}/files`)).status).toBe(404);
    expect(((await (await other.get('/v1/models')).json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(['tiny-arith']);
  });

  it('answers_404_for_unknown_and_mismatched_model_names', async () => {
    const { job } = await trainedJob('s', [1]);
    for (const id of ['nope', `ft:tiny-arith:other:${job.id}`, `ft:tiny-arith:s:${job.id}:ckpt-9`, 'ft:bad'])
      expect((await api.get(`/v1/models/${encodeURIComponent(id)}`)).status).toBe(404);
  });
});

describe('signed blob URLs', () => {
  it('refuses_tampered_expired_and_wrong_method_urls', async () => {
    const files = (await (await api.get('/v1/models/tiny-arith/files')).json()) as { data: { url: string }[] };
    const url = new URL(files.data[0].url);
    expect((await t.fetch(url.toString())).status).toBe(200);
    const tampered = new URL(url);
    tampered.pathname = tampered.pathname.replace('config.json', 'tokenizer.json');
    expect((await t.fetch(tampered.toString())).status).toBe(403);
    const wrongMethod = await t.fetch(url.toString(), { method: 'PUT', body: 'x' });
    expect(wrongMethod.status).toBe(403);
    expect((await t.fetch('http://localhost/blobs/%E0%A4%A?method=GET&exp=1&sig=x')).status).toBe(400);
    t.clock.advance(t.deps.config.signedUrlSeconds + 1);
    const expired = await t.fetch(url.toString());
    expect(expired.status).toBe(403);
    expect(((await expired.json()) as any).error.message).toMatch(/expired/);
  });

  it('rejects_a_put_over_the_blob_limit_and_keeps_nothing', async () => {
    t.deps.config.limits = { ...t.deps.config.limits, maxBlobBytes: 10 };
    const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
    await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id });
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    const urls = (await (await worker.raw(`/internal/jobs/${claim.job.id}/checkpoints/uploads`, {
      lease_token: claim.lease.token,
      step: 1,
      files: [{ name: 'a.bin', bytes: 5, sha256: sha256('12345') }],
    })).json()) as { files: { url: string }[] };
    const body = new ReadableStream({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode('0123456789'));
        ctl.enqueue(new TextEncoder().encode('overflow'));
        ctl.close();
      },
    });
    const res = await t.fetch(urls.files[0].url, { method: 'PUT', body, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(t.blobCount('checkpoints')).toBe(0);
  });
});
