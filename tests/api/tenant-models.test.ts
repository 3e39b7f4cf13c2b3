/**
 * Tenant-owned base models (issue 17, src/models/tenant-models.ts, /v1/model_uploads): a tenant declares a model
 * folder (the bundled tiny model's real files), PUTs each file to its signed URL, completes, and then lists it,
 * fine-tunes it (a worker's claim carries its files) while another tenant sees nothing of it. Bad declarations and
 * bad uploads are 4xx naming the field or the file. Real SQLite, real local blob store, real signed URLs.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { sha256, TestWorker } from '../helpers/worker-client';

const NAMES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors', 'model.onnx', 'manifest.json'];
const FILES: Record<string, Uint8Array<ArrayBuffer>> = Object.fromEntries(NAMES.map((n) => [n, new Uint8Array(readFileSync(new URL(`../../models/tiny/${n}`, import.meta.url)))]));
const declare = (files: Record<string, Uint8Array<ArrayBuffer>> = FILES) => Object.entries(files).map(([name, b]) => ({ name, bytes: b.length, sha256: sha256(b) }));

let t: TestApp;
let a: ReturnType<typeof client>;
let b: ReturnType<typeof client>;
beforeEach(async () => {
  t = await makeTestApp();
  a = client(t.fetch, (await t.newTenant('acme')).key);
  b = client(t.fetch, (await t.newTenant('other')).key);
});
afterEach(() => t.close());

async function error(res: Response) {
  return { status: res.status, ...((await res.json()) as { error: { message: string; param: string; code: string } }).error };
}

async function upload(id: string, files: Record<string, Uint8Array<ArrayBuffer>> = FILES) {
  const res = await a.post('/v1/model_uploads', { id, files: declare(files) });
  expect(res.status, await res.clone().text()).toBe(200);
  const started = (await res.json()) as { upload_urls: { name: string; url: string }[]; status: string };
  expect(started.status).toBe('uploading');
  for (const { name, url } of started.upload_urls) {
    const put = await t.fetch(url, { method: 'PUT', body: files[name] });
    expect(put.status, await put.clone().text()).toBe(200);
  }
  return started;
}

describe('tenant-owned base models', () => {
  it('uploads_completes_lists_and_fine_tunes_a_model_another_tenant_cannot_see', async () => {
    const started = await upload('acme-tiny');
    expect((await a.get('/v1/models/acme-tiny')).status).toBe(404); // not before it is complete
    const done = await a.post('/v1/model_uploads/acme-tiny/complete');
    expect(done.status, await done.clone().text()).toBe(200);
    expect(await done.json()).toMatchObject({ id: 'acme-tiny', status: 'ready', parameters: 845056, bytes: Object.values(FILES).reduce((s, f) => s + f.length, 0) });
    // closed for writing once complete
    const late = await t.fetch(started.upload_urls[0]!.url, { method: 'PUT', body: FILES[started.upload_urls[0]!.name] });
    expect((await error(late)).code).toMatch(/upload_closed|blob_exists/);

    const listed = ((await (await a.get('/v1/models')).json()) as { data: { id: string; owned_by: string }[] }).data.map((m) => m.id);
    expect(listed).toEqual(expect.arrayContaining(['tiny-arith', 'acme-tiny']));
    expect((await a.get('/v1/models/acme-tiny')).status).toBe(200);
    // the other tenant: not listed, not found, cannot fine-tune it, cannot take its id
    const otherList = ((await (await b.get('/v1/models')).json()) as { data: { id: string }[] }).data.map((m) => m.id);
    expect(otherList).not.toContain('acme-tiny');
    expect((await b.get('/v1/models/acme-tiny')).status).toBe(404);
    const fileB = ((await (await b.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
    expect((await error(await b.post('/v1/finetune', { model: 'acme-tiny', training_file: fileB }))).status).toBe(404);
    expect(await error(await b.post('/v1/model_uploads', { id: 'acme-tiny', files: declare() }))).toMatchObject({ status: 409, param: 'id', code: 'model_exists' });

    // the owner fine-tunes it; the worker's claim carries the uploaded files, downloadable and intact
    const fileA = ((await (await a.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
    const job = await a.post('/v1/finetune', { model: 'acme-tiny', training_file: fileA, method: { hyperparameters: { batch_size: 2, mini_batch_size: 1, group_size: 2, max_response_tokens: 32 } } });
    expect(job.status, await job.clone().text()).toBe(200);
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    const claim = (await worker.claim())!;
    expect(claim.job.model).toBe('acme-tiny');
    expect(claim.base_model.files.map((f) => f.name).sort()).toEqual([...NAMES].sort());
    const weights = claim.base_model.files.find((f) => f.name === 'model.safetensors')!;
    expect(sha256(await worker.download(weights.url))).toBe(sha256(FILES['model.safetensors']!));

    // deleted: gone from the owner's models, its blobs removed, the id free again; the other tenant cannot delete it
    expect(t.blobCount('tenant-models')).toBe(NAMES.length);
    expect((await b.delete('/v1/model_uploads/acme-tiny')).status).toBe(404);
    expect(await (await a.delete('/v1/model_uploads/acme-tiny')).json()).toEqual({ id: 'acme-tiny', object: 'model_upload', deleted: true });
    expect((await a.get('/v1/models/acme-tiny')).status).toBe(404);
    expect(t.blobCount('tenant-models')).toBe(0);
  });

  it('answers_4xx_naming_what_is_wrong', async () => {
    const { 'manifest.json': _m, ...noManifest } = FILES;
    expect(await error(await a.post('/v1/model_uploads', { id: 'x', files: declare(noManifest) }))).toMatchObject({ status: 400, param: 'files', message: expect.stringContaining('needs manifest.json') });
    expect(await error(await a.post('/v1/model_uploads', { id: 'x', files: [...declare(), { name: 'evil.sh', bytes: 1, sha256: sha256('x') }] }))).toMatchObject({ status: 400 });
    expect(await error(await a.post('/v1/model_uploads', { id: 'tiny-arith', files: declare() }))).toMatchObject({ status: 409, code: 'model_exists' });
    expect(await error(await a.post('/v1/model_uploads', { id: 'has space', files: declare() }))).toMatchObject({ status: 400, param: 'id' });
    const hugeConfig = declare().map((f) => (f.name === 'config.json' ? { ...f, bytes: 2 ** 30 } : f));
    expect(await error(await a.post('/v1/model_uploads', { id: 'x', files: hugeConfig }))).toMatchObject({ status: 413, param: 'files[0].bytes', code: 'model_too_large' });

    // declared but not uploaded -> complete names the file
    const res = await a.post('/v1/model_uploads', { id: 'half', files: declare() });
    const { upload_urls } = (await res.json()) as { upload_urls: { name: string; url: string }[] };
    for (const { name, url } of upload_urls.filter((u) => u.name !== 'model.onnx')) await t.fetch(url, { method: 'PUT', body: FILES[name] });
    expect(await error(await a.post('/v1/model_uploads/half/complete'))).toMatchObject({ status: 400, param: 'files', message: 'files: model.onnx was not uploaded' });
    // other content than declared is refused by the signed URL itself
    const onnx = upload_urls.find((u) => u.name === 'model.onnx')!;
    expect(await error(await t.fetch(onnx.url, { method: 'PUT', body: new Uint8Array([1, 2, 3]) }))).toMatchObject({ status: 400, code: 'blob_sha256_mismatch' });
    expect((await a.post('/v1/model_uploads/nope/complete')).status).toBe(404);
    expect((await b.post('/v1/model_uploads/half/complete')).status).toBe(404);
  });

  it('refuses_an_unsupported_architecture_at_complete_naming_config_json', async () => {
    const config = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(FILES['config.json']!)), model_type: 'mistral' })) as Uint8Array<ArrayBuffer>;
    await upload('mistral-ish', { ...FILES, 'config.json': config });
    expect(await error(await a.post('/v1/model_uploads/mistral-ish/complete'))).toMatchObject({ status: 400, param: 'files', message: expect.stringContaining("config.json: model_type 'mistral' is not supported") });
    expect((await a.get('/v1/models/mistral-ish')).status).toBe(404);
  });

  it('enforces_the_size_limits', async () => {
    await t.close();
    t = await makeTestApp({ config: { tenantModelLimits: { maxFiles: 16, maxBytes: 1000, maxModelsPerTenant: 1 } } });
    a = client(t.fetch, (await t.newTenant('acme')).key);
    expect(await error(await a.post('/v1/model_uploads', { id: 'big', files: declare() }))).toMatchObject({ status: 413, param: 'files', code: 'model_too_large' });
    const small = { name: 'model.safetensors', bytes: 10, sha256: sha256('x') };
    const tinyDecl = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.onnx', 'manifest.json'].map((name) => ({ name, bytes: 10, sha256: sha256(name) }));
    expect((await a.post('/v1/model_uploads', { id: 'one', files: [...tinyDecl, small] })).status).toBe(200);
    expect(await error(await a.post('/v1/model_uploads', { id: 'two', files: [...tinyDecl, small] }))).toMatchObject({ status: 400, code: 'model_limit' });
  });
});
