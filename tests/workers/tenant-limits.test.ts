/**
 * Per-tenant limits and fair claiming inside the real Workers runtime, on D1: the same SQL as on SQLite (the atomic
 * upsert of the request window, the job quota's guard inside the create batch, the fair pick's join and the
 * round-robin stamp), with the limits read from env (TENANT_* vars, overridden per call here).
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import worker from '../../src/entry/worker';
import { GOOD_LINES, client, jsonl, type Fetch } from '../helpers/http';
import { TestWorker } from '../helpers/worker-client';
import { BASE, countRows, newTenant, workerFetch } from './harness';

/** `fetch` into the Worker with some env vars overridden (a fresh app per env, as in a new deployment). */
const fetchWith =
  (over: Partial<typeof env>): Fetch =>
  async (url, init) => {
    const ctx = createExecutionContext();
    const request = new Request(new URL(url, BASE), init) as Parameters<typeof worker.fetch>[0];
    const res = await worker.fetch(request, { ...env, ...over }, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };

async function tenantQueuing(name: string, fetch: Fetch = workerFetch) {
  const { key, tenantId } = await newTenant(name);
  const api = client(fetch, key, BASE);
  const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
  const create = () => api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id });
  return { api, tenantId, create };
}

const idOf = async (res: Response) => {
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
};

describe('fair claiming on D1', () => {
  // Claims take any queued job: start from an empty queue.
  beforeEach(async () => {
    await env.DB.prepare("update jobs set status = 'cancelled' where status = 'queued'").run();
  });

  it('claims_the_second_tenants_only_job_second_not_after_all_of_the_first_tenants', async () => {
    const a = await tenantQueuing('a');
    const aJobs = [];
    for (let i = 0; i < 6; i++) {
      aJobs.push(await idOf(await a.create()));
      await new Promise((r) => setTimeout(r, 2)); // distinct creation times (the Worker's clock is the system's)
    }
    const b = await tenantQueuing('b');
    const bJob = await idOf(await b.create());
    const gpu = new TestWorker(workerFetch, env.WORKER_TOKEN, 'gpu-fair', BASE);
    const order = [];
    for (let c = await gpu.claim(); c; c = await gpu.claim()) order.push(c.job.id);
    expect(order).toEqual([aJobs[0], bJob, ...aJobs.slice(1)]);
  });
});

describe('tenant limits on D1', () => {
  it('refuses_a_job_over_the_quota_with_429_and_headers_while_another_tenant_still_creates', async () => {
    const limited = fetchWith({ TENANT_ACTIVE_JOBS: '2' });
    const a = await tenantQueuing('a', limited);
    await idOf(await a.create());
    await idOf(await a.create());
    const refused = await a.create();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('60');
    expect(refused.headers.get('x-ratelimit-limit-jobs')).toBe('2');
    expect(refused.headers.get('x-ratelimit-remaining-jobs')).toBe('0');
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe(env.TENANT_REQUESTS_PER_MINUTE);
    expect(((await refused.json()) as { error: { code: string; type: string } }).error).toMatchObject({
      type: 'rate_limit_error',
      code: 'rate_limit_exceeded',
    });
    expect(await countRows('jobs', 'tenant_id = ?', a.tenantId)).toBe(2);

    const b = await tenantQueuing('b', limited);
    await idOf(await b.create());
  });

  it('keeps_concurrent_creates_within_the_quota', async () => {
    const a = await tenantQueuing('a', fetchWith({ TENANT_ACTIVE_JOBS: '3' }));
    const answers = await Promise.all(Array.from({ length: 8 }, () => a.create()));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(5);
    expect(await countRows('jobs', 'tenant_id = ?', a.tenantId)).toBe(3);
  });

  it('answers_429_over_the_requests_per_minute_limit_with_retry_after_and_headers', async () => {
    const limit = 3;
    const limited = fetchWith({ TENANT_REQUESTS_PER_MINUTE: String(limit) });
    const a = client(limited, (await newTenant('a')).key, BASE);
    // 2 * limit + 1 requests: even if they straddle a minute boundary, one window holds more than the limit.
    const answers = [];
    for (let i = 0; i < 2 * limit + 1; i++) answers.push(await a.get('/v1/models'));
    const refused = answers.find((r) => r.status === 429)!;
    expect(refused).toBeDefined();
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe(String(limit));
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    // Another tenant is served meanwhile.
    expect((await client(limited, (await newTenant('b')).key, BASE).get('/v1/models')).status).toBe(200);
  });

  it('refuses_to_start_with_a_malformed_limit', async () => {
    const res = await fetchWith({ TENANT_CONCURRENT_SAMPLES: 'many' })('/healthz');
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('misconfigured');
  });
});
