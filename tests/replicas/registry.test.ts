/**
 * The replica registry on the real app and SQLite (/internal/replicas): register, heartbeat, list, drop-out after
 * the TTL, deregistration; worker token only; bad input answers 400 naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLICA_TTL_SECONDS } from '../../src/replicas/store';
import { WORKER_TOKEN, makeTestApp, type TestApp } from '../helpers/app';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp();
});
afterAll(() => t.close());

const call = (path: string, body?: unknown, token = WORKER_TOKEN) =>
  t.fetch(`http://api.test/internal${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const live = async () => ((await (await call('/replicas')).json()) as { data: { id: string; load: number; models: string[] }[] }).data;

describe('the replica registry', () => {
  it('registers_heartbeats_lists_and_drops_a_silent_replica', async () => {
    const res = await call('/replicas', { url: 'http://10.0.0.5:8100', capacity: 2, load: 0, models: [] });
    expect(res.status).toBe(201);
    const reg = (await res.json()) as { id: string; token: string; heartbeat_seconds: number; ttl_seconds: number };
    expect(reg.token).toMatch(/^rt-/);
    expect(reg.ttl_seconds).toBeGreaterThan(reg.heartbeat_seconds);
    expect((await live()).map((r) => r.id)).toContain(reg.id);

    t.clock.advance(REPLICA_TTL_SECONDS - 1);
    const beat = await call(`/replicas/${reg.id}/heartbeat`, { token: reg.token, load: 3, models: ['tiny-arith@abc'] });
    expect(beat.status).toBe(200);
    expect((await live()).find((r) => r.id === reg.id)).toMatchObject({ load: 3, models: ['tiny-arith@abc'] });

    expect((await call(`/replicas/${reg.id}/heartbeat`, { token: 'rt-wrong', load: 0, models: [] })).status).toBe(404);

    t.clock.advance(REPLICA_TTL_SECONDS + 1); // silent for longer than the TTL
    expect((await live()).map((r) => r.id)).not.toContain(reg.id);
    const late = await call(`/replicas/${reg.id}/heartbeat`, { token: reg.token, load: 0, models: [] });
    expect(late.status).toBe(404);
    expect(((await late.json()) as { error: { code: string } }).error.code).toBe('replica_unknown');
  });

  it('deregisters_on_request', async () => {
    const reg = (await (await call('/replicas', { url: 'http://10.0.0.6:8100', load: 0, models: [] })).json()) as { id: string; token: string };
    expect((await call(`/replicas/${reg.id}/deregister`, { token: reg.token })).status).toBe(204);
    expect((await live()).map((r) => r.id)).not.toContain(reg.id);
    expect((await call(`/replicas/${reg.id}/deregister`, { token: reg.token })).status).toBe(404);
  });

  it('refuses_user_keys_and_names_bad_fields', async () => {
    const { key } = await t.newTenant();
    expect((await call('/replicas', { url: 'http://x:1', load: 0, models: [] }, key)).status).toBe(403);
    for (const [body, param] of [
      [{ url: 'ftp://x', load: 0, models: [] }, 'url'],
      [{ url: 'http://x:1', load: -1, models: [] }, 'load'],
      [{ url: 'http://x:1', load: 0, models: 'a' }, 'models'],
    ] as const) {
      const res = await call('/replicas', body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
  });
});

describe('routing to replicas that cannot answer', () => {
  it('answers_503_replicas_unavailable_when_every_live_replica_is_unreachable', async () => {
    const { ReplicaEngineRegistry } = await import('../../src/replicas/replica-engines');
    t.deps.engines = new ReplicaEngineRegistry(() => t.deps);
    const { freePort } = await import('../e2e/stack');
    for (let i = 0; i < 2; i++) {
      const res = await call('/replicas', { url: `http://127.0.0.1:${await freePort()}`, load: 0, models: [] }); // nothing listens there
      expect(res.status).toBe(201);
    }
    const { key } = await t.newTenant();
    const res = await t.fetch('http://api.test/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-arith', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(503);
    expect(body.error.code).toBe('replicas_unavailable');
    expect(body.error.message).toContain('unreachable; unreachable');
  });
});
