/** Credentials, request ids, the error envelope, body limits and Idempotency-Key semantics. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { apiKeys } from '../../src/db/schema';
import { expireLeases } from '../../src/jobs/lease-expiry';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { TestWorker } from '../helpers/worker-client';

let t: TestApp;
let key: string;
let api: ReturnType<typeof client>;
beforeEach(async () => {
  t = await makeTestApp();
  key = (await t.newTenant()).key;
  api = client(t.fetch, key);
});
afterEach(() => t.close());

const envelope = async (res: Response) => ((await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;

describe('credentials', () => {
  it('refuses_absent_malformed_unknown_and_revoked_keys_with_401', async () => {
    for (const auth of [undefined, 'Basic abc', 'Bearer sk-not-a-key', `Bearer ${WORKER_TOKEN}`]) {
      const res = await t.fetch('http://localhost/v1/files', { headers: auth ? { authorization: auth } : {} });
      expect(res.status).toBe(401);
      expect((await envelope(res)).type).toBe('authentication_error');
    }
    await t.deps.database.db.update(apiKeys).set({ revokedAt: t.clock.now() }).where(eq(apiKeys.prefix, key.slice(0, 8)));
    expect((await api.get('/v1/files')).status).toBe(401);
  });

  it('stores_only_the_hash_of_api_keys', async () => {
    const row = t.deps.database.sqlite.prepare('select * from api_keys').get() as Record<string, string>;
    expect(JSON.stringify(row)).not.toContain(key);
    expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses_a_user_key_on_internal_routes_with_403_and_a_bad_token_with_401', async () => {
    const asUser = new TestWorker(t.fetch, key);
    const res = await asUser.raw('/internal/jobs/claim', { worker_id: 'x' });
    expect(res.status).toBe(403);
    expect((await envelope(res)).code).toBe('worker_token_required');
    expect((await new TestWorker(t.fetch, 'wrong').raw('/internal/jobs/claim', { worker_id: 'x' })).status).toBe(401);
    expect((await t.fetch('http://localhost/internal/jobs/claim', { method: 'POST' })).status).toBe(401);
  });

  it('rejects_a_user_key_on_internal_routes_before_touching_any_job', async () => {
    const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
    await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id });
    await new TestWorker(t.fetch, key).claim().catch(() => null);
    expect(((await (await api.get('/v1/finetune')).json()) as any).data[0].status).toBe('queued');
  });
});

describe('request ids and the error envelope', () => {
  it('puts_x_request_id_on_success_error_and_not_found_responses', async () => {
    for (const res of [await t.fetch('http://localhost/healthz'), await t.fetch('http://localhost/v1/files'), await t.fetch('http://localhost/nope')])
      expect(res.headers.get('x-request-id')).toMatch(/^req-/);
    const echoed = await t.fetch('http://localhost/healthz', { headers: { 'x-request-id': 'client-123' } });
    expect(echoed.headers.get('x-request-id')).toBe('client-123');
  });

  it('answers_unknown_routes_with_the_envelope', async () => {
    const res = await t.fetch('http://localhost/nope');
    expect(res.status).toBe(404);
    expect(await envelope(res)).toMatchObject({ type: 'not_found_error', code: 'route_not_found', param: null });
  });
});

describe('Idempotency-Key', () => {
  const body = () => ({ model: 'tiny-arith', training_file: fileId });
  let fileId: string;
  beforeEach(async () => {
    fileId = ((await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
  });

  it('replays_the_stored_response_for_the_same_key_and_body', async () => {
    const first = await api.post('/v1/finetune', body(), { 'idempotency-key': 'k1' });
    const second = await api.post('/v1/finetune', body(), { 'idempotency-key': 'k1' });
    expect(second.status).toBe(200);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await second.json()).toEqual(await first.json());
    expect(t.rows().jobs).toBe(1);
  });

  it('answers_409_for_the_same_key_with_another_body', async () => {
    await api.post('/v1/finetune', body(), { 'idempotency-key': 'k2' });
    const res = await api.post('/v1/finetune', { ...body(), suffix: 'other' }, { 'idempotency-key': 'k2' });
    expect(res.status).toBe(409);
    expect((await envelope(res)).code).toBe('idempotency_key_reused');
    expect(t.rows().jobs).toBe(1);
  });

  it('scopes_keys_by_tenant', async () => {
    const other = client(t.fetch, (await t.newTenant('other')).key);
    const otherFile = ((await (await other.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
    await api.post('/v1/finetune', body(), { 'idempotency-key': 'shared' });
    const res = await other.post('/v1/finetune', { model: 'tiny-arith', training_file: otherFile }, { 'idempotency-key': 'shared' });
    expect(res.status).toBe(200);
    expect(res.headers.get('idempotent-replayed')).toBeNull();
    expect(t.rows().jobs).toBe(2);
  });

  it('does_not_store_an_error_so_a_corrected_retry_with_the_same_key_runs', async () => {
    const bad = await api.post('/v1/finetune', { model: 'nope', training_file: fileId }, { 'idempotency-key': 'k3' });
    expect(bad.status).toBe(404);
    expect(t.rows().idempotency_keys).toBe(0); // nothing kept for the failed request
    const good = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId }, { 'idempotency-key': 'k3' });
    expect(good.status).toBe(200);
    expect(good.headers.get('idempotent-replayed')).toBeNull();
    expect(t.rows().jobs).toBe(1);
    expect(t.rows().idempotency_keys).toBe(1);
  });

  it('replays_file_uploads_without_storing_a_second_file', async () => {
    const content = jsonl(...GOOD_LINES);
    const a = await api.upload(content, 'a.jsonl', 'fine-tune', { 'idempotency-key': 'up-1' });
    const b = await api.upload(content, 'a.jsonl', 'fine-tune', { 'idempotency-key': 'up-1' });
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(await b.json()).toEqual(await a.json());
    expect(t.rows().files).toBe(2); // the beforeEach file and this one
    const c = await api.upload(jsonl(GOOD_LINES[0]), 'a.jsonl', 'fine-tune', { 'idempotency-key': 'up-1' });
    expect(c.status).toBe(409);
    expect(t.rows().files).toBe(2);
  });

  it('applies_to_worker_calls_too', async () => {
    await api.post('/v1/finetune', body());
    const worker = new TestWorker(t.fetch, WORKER_TOKEN);
    const a = await worker.raw('/internal/jobs/claim', { worker_id: 'w' }, { 'idempotency-key': 'claim-1' });
    const b = await worker.raw('/internal/jobs/claim', { worker_id: 'w' }, { 'idempotency-key': 'claim-1' });
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(((await b.json()) as any).lease.token).toBe(((await a.json()) as any).lease.token);
  });

  it('forgets_keys_after_24_hours', async () => {
    await api.post('/v1/finetune', body(), { 'idempotency-key': 'old' });
    t.clock.advance(24 * 3600 + 1);
    await expireLeases(t.deps);
    expect(t.rows().idempotency_keys).toBe(0);
    const res = await api.post('/v1/finetune', { ...body(), suffix: 'new' }, { 'idempotency-key': 'old' });
    expect(res.status).toBe(200);
  });

  it('rejects_a_malformed_key', async () => {
    const res = await api.post('/v1/finetune', body(), { 'idempotency-key': 'x'.repeat(300) });
    expect(res.status).toBe(400);
    expect((await envelope(res)).param).toBe('Idempotency-Key');
    expect(t.rows().jobs).toBe(0);
  });
});
