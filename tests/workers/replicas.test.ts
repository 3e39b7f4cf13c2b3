/**
 * The serving-replica registry inside workerd on D1 (src/routes/internal/replicas.ts through the Worker's fetch
 * handler): register, heartbeat, list, drop-out of a silent replica, deregistration; and a request for a model
 * routed to a live replica that is unreachable answers 503 replicas_unavailable, not a 500.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { client } from '../helpers/http';
import { BASE, newTenant, workerFetch } from './harness';

const call = (path: string, body?: unknown) =>
  workerFetch(`/internal${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${env.WORKER_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const live = async () => ((await (await call('/replicas')).json()) as { data: { id: string; load: number; models: string[] }[] }).data;

describe('serving replicas on D1', () => {
  it('registers_heartbeats_drops_a_silent_one_and_deregisters', async () => {
    const a = (await (await call('/replicas', { url: 'http://127.0.0.1:9', load: 0, models: [] })).json()) as { id: string; token: string };
    const b = (await (await call('/replicas', { url: 'http://127.0.0.1:9', load: 0, models: [] })).json()) as { id: string; token: string };
    expect((await call(`/replicas/${a.id}/heartbeat`, { token: a.token, load: 2, models: ['m@1'] })).status).toBe(200);
    expect((await live()).find((r) => r.id === a.id)).toMatchObject({ load: 2, models: ['m@1'] });

    // b goes silent: its expiry passes (moved into the past rather than waiting)
    await env.DB.prepare('update serve_replicas set expires_at = ? where id = ?').bind(Date.now() - 1, b.id).run();
    expect((await live()).map((r) => r.id)).not.toContain(b.id);
    expect((await call(`/replicas/${b.id}/heartbeat`, { token: b.token, load: 0, models: [] })).status).toBe(404);

    // a live replica that cannot be reached: the request answers 503, not 500
    const api = client(workerFetch, (await newTenant()).key, BASE);
    const res = await api.post('/v1/reason', { model: 'tiny-arith', prompt: 'What is 2+3?' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('replicas_unavailable');

    expect((await call(`/replicas/${a.id}/deregister`, { token: a.token })).status).toBe(204);
    expect(await live()).toEqual([]);
  });
});
