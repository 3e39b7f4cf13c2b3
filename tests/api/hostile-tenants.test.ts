/**
 * Issue 11's findings that live in the API itself, each reproduced as the attack that found it: write-once
 * checkpoint blobs and upload URLs that die with their checkpoint or job, idempotency reservations of a killed
 * process, orphaned upload files, DATA_DIR permissions, the /docs Content-Security-Policy, and key revocation.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyKeys } from '../../src/db/schema';
import { recoverAfterCrash } from '../../src/entry/node-deps';
import { ABANDONED_MS } from '../../src/middleware/idempotency';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { sha256, TestWorker, type Claim } from '../helpers/worker-client';

let t: TestApp;
let api: ReturnType<typeof client>;
let worker: TestWorker;
beforeEach(async () => {
  t = await makeTestApp();
  api = client(t.fetch, (await t.newTenant()).key);
  worker = new TestWorker(t.fetch, WORKER_TOKEN);
});
afterEach(() => t.close());

async function runningJob(): Promise<{ jobId: string; claim: Claim }> {
  const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
  const job = (await (await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id })).json()) as { id: string };
  const claim = (await worker.claim())!;
  return { jobId: job.id, claim };
}

async function uploadUrl(jobId: string, lease: string, step: number, content: string): Promise<string> {
  const res = await worker.raw(`/internal/jobs/${jobId}/checkpoints/uploads`, {
    lease_token: lease,
    step,
    files: [{ name: 'model.onnx', bytes: content.length, sha256: sha256(content) }],
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { files: { url: string }[] }).files[0].url;
}

const put = (url: string, body: string) => t.fetch(url, { method: 'PUT', body });

describe('checkpoint blobs are write-once and their upload URLs die with the checkpoint or the job', () => {
  it('refuses_a_second_put_to_a_written_key_and_keeps_the_first_bytes', async () => {
    const { jobId, claim } = await runningJob();
    const url = await uploadUrl(jobId, claim.lease.token, 1, 'good');
    expect((await put(url, 'good')).status).toBe(200);
    const again = await put(url, 'evil');
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.code).toBe('blob_exists');
    const register = await worker.raw(`/internal/jobs/${jobId}/checkpoints`, {
      lease_token: claim.lease.token,
      step: 1,
      files: [{ name: 'model.onnx', bytes: 4, sha256: sha256('good') }],
      metrics: {},
    });
    expect(register.status).toBe(200);
  });

  it('refuses_an_upload_url_once_its_checkpoint_is_registered', async () => {
    const { jobId, claim } = await runningJob();
    // The attack: keep the URL of a file, let the worker register the step, then overwrite the registered bytes.
    const url = await uploadUrl(jobId, claim.lease.token, 2, 'good');
    expect((await worker.checkpoint(jobId, claim.lease.token, 2, { 'model.onnx': 'good' })).status).toBe(200);
    const res = await put(url, 'evil');
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.code).toBe('upload_closed');
    const model = (await (await api.get(`/v1/models/${encodeURIComponent(`ft:tiny-arith::${jobId}:ckpt-2`)}/files`)).json()) as any;
    const file = model.data.find((f: { name: string }) => f.name === 'model.onnx');
    expect(file.sha256).toBe(sha256('good'));
    expect(new TextDecoder().decode(await worker.download(file.url))).toBe('good');
  });

  it('refuses_an_unused_upload_url_after_the_job_is_cancelled', async () => {
    const { jobId, claim } = await runningJob();
    const url = await uploadUrl(jobId, claim.lease.token, 3, 'late');
    expect((await api.post(`/v1/finetune/${jobId}/cancel`, {})).status).toBe(200);
    const res = await put(url, 'late');
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.message).toMatch(/no longer running/);
    expect(t.blobCount('checkpoints')).toBe(0);
  });

  it('refuses_an_upload_url_of_an_earlier_attempt_after_the_job_is_claimed_again', async () => {
    const { jobId, claim } = await runningJob();
    const url = await uploadUrl(jobId, claim.lease.token, 4, 'old');
    t.clock.advance(claim.lease.seconds + 1);
    const { expireLeases } = await import('../../src/jobs/lease-expiry');
    await expireLeases(t.deps);
    const second = (await worker.claim())!;
    expect(second.attempt).toBe(2);
    const res = await put(url, 'old');
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.message).toMatch(/another attempt/);
    // The new attempt writes the same step beside the old attempt's files and registers it.
    expect((await worker.checkpoint(jobId, second.lease.token, 4, { 'model.onnx': 'new' })).status).toBe(200);
  });
});

describe('idempotency reservations of a request that died', () => {
  /**
   * What a SIGKILL in the middle of `POST /v1/api_keys` (no body) leaves behind: the reservation of that request,
   * with its fingerprint (method, path, SHA-256 of the body) and no response.
   */
  async function leftBehind(key: string, createdAt: number) {
    const tenant = await t.newTenant('killed');
    const fingerprint = sha256(`POST\n/v1/api_keys\n${sha256('')}`);
    await t.deps.database.db.insert(idempotencyKeys).values({ scope: `tenant:${tenant.tenantId}`, key, fingerprint, createdAt });
    return client(t.fetch, tenant.key);
  }

  it('answers_409_with_retry_after_while_the_reservation_is_fresh', async () => {
    const c = await leftBehind('k-1', t.clock.now());
    const res = await c.post('/v1/api_keys', undefined, { 'idempotency-key': 'k-1' });
    expect(res.status).toBe(409);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as any).error.code).toBe('idempotency_request_in_progress');
  });

  it('releases_a_reservation_left_untouched_for_a_minute', async () => {
    const c = await leftBehind('k-2', t.clock.now());
    t.clock.advance(ABANDONED_MS / 1000 + 1);
    const res = await c.post('/v1/api_keys', undefined, { 'idempotency-key': 'k-2' });
    expect(res.status).toBe(200);
  });

  it('releases_every_reservation_at_start_up_of_the_node_api', async () => {
    const c = await leftBehind('k-3', t.clock.now());
    const recovered = await recoverAfterCrash(t.deps, join(t.dataDir, 'data'));
    expect(recovered.reservations).toBe(1);
    const res = await c.post('/v1/api_keys', undefined, { 'idempotency-key': 'k-3' });
    expect(res.status).toBe(200);
    // A completed request's stored answer is not a reservation: it stays and replays.
    await recoverAfterCrash(t.deps, join(t.dataDir, 'data'));
    const replay = await c.post('/v1/api_keys', undefined, { 'idempotency-key': 'k-3' });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
  });
});

describe('local state on disk', () => {
  it('removes_upload_files_a_crash_left_behind_at_start_up', async () => {
    const folder = join(t.dataDir, 'data', 'blobs', 'files', 'org-x');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'file-1.0b6a7e52-0000-4000-8000-000000000000.tmp'), 'half an upload');
    writeFileSync(join(folder, 'file-2'), 'a finished blob');
    const recovered = await recoverAfterCrash(t.deps, join(t.dataDir, 'data'));
    expect(recovered.orphanedUploads).toBe(1);
    expect(readdirSync(folder)).toEqual(['file-2']);
  });

  it('keeps_data_dir_private_to_the_api_user', async () => {
    await api.upload(jsonl(...GOOD_LINES));
    const data = join(t.dataDir, 'data');
    const mode = (p: string) => statSync(p).mode & 0o777;
    expect(mode(data)).toBe(0o700);
    expect(mode(join(data, 'api.sqlite'))).toBe(0o600);
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    const blobs = walk(join(data, 'blobs'));
    expect(blobs.length).toBeGreaterThan(0);
    for (const f of blobs) expect([f, mode(f)]).toEqual([f, 0o600]);
    expect(existsSync(join(data, 'api.sqlite-wal')) ? mode(join(data, 'api.sqlite-wal')) : 0o600).toBe(0o600);
  });
});

describe('the API reference page', () => {
  it('serves_docs_with_a_content_security_policy_that_allows_only_its_own_scripts', async () => {
    const res = await t.fetch('http://localhost/docs');
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toMatch(/unsafe-eval|script-src[^;]*unsafe-inline/);
    // The hash is of the page's own inline script: a changed script would no longer run.
    const html = await res.text();
    const inline = /<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/.exec(html)![1];
    const digest = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(inline))).toString('base64');
    expect(csp).toContain(`'sha256-${digest}'`);
  });
});

describe('API keys', () => {
  it('revokes_a_key_so_that_its_next_request_gets_401', async () => {
    const created = (await (await api.post('/v1/api_keys', { name: 'ci' })).json()) as { id: string; key: string; prefix: string };
    expect(created.key.startsWith(created.prefix)).toBe(true);
    const second = client(t.fetch, created.key);
    expect((await second.get('/v1/models')).status).toBe(200);
    const listed = (await (await api.get('/v1/api_keys')).json()) as { data: { id: string; revoked_at: number | null }[] };
    expect(listed.data.map((k) => k.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const revoked = await second.post(`/v1/api_keys/${created.id}/revoke`, {});
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as any).revoked_at).not.toBeNull();
    const after = await second.get('/v1/models');
    expect(after.status).toBe(401);
    expect(((await after.json()) as any).error.code).toBe('invalid_api_key');
    expect((await api.get('/v1/models')).status).toBe(200);
  });

  it('cannot_see_or_revoke_another_tenants_key', async () => {
    const other = (await (await client(t.fetch, (await t.newTenant('other')).key).post('/v1/api_keys', { name: 'theirs' })).json()) as {
      id: string;
    };
    const listed = (await (await api.get('/v1/api_keys')).json()) as { data: { id: string }[] };
    expect(listed.data.map((k) => k.id)).not.toContain(other.id);
    expect((await api.post(`/v1/api_keys/${other.id}/revoke`, {})).status).toBe(404);
  });
});
