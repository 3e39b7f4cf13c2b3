/**
 * Fair claiming (src/jobs/claim.ts), the attack of issue 11: tenant A queues many jobs, tenant B queues one; B's
 * job must be claimed second, not after all of A's. Round-robin across tenants, oldest first within a tenant.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { TestWorker } from '../helpers/worker-client';

let t: TestApp;
let worker: TestWorker;
beforeEach(async () => {
  t = await makeTestApp();
  worker = new TestWorker(t.fetch, WORKER_TOKEN);
});
afterEach(() => t.close());

async function tenantQueuing(name: string) {
  const api = client(t.fetch, (await t.newTenant(name)).key);
  const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
  return async (count: number, model = 'tiny-arith'): Promise<string[]> => {
    const ids = [];
    for (let i = 0; i < count; i++) {
      t.clock.advance(1); // distinct creation times: "oldest first" is then well defined
      const res = await api.post('/v1/finetune', { model, training_file: file.id });
      expect(res.status).toBe(200);
      ids.push(((await res.json()) as { id: string }).id);
    }
    return ids;
  };
}

async function claimAll(): Promise<string[]> {
  const order = [];
  for (let c = await worker.claim(); c; c = await worker.claim()) order.push(c.job.id);
  return order;
}

describe('fair claiming across tenants', () => {
  it('claims_the_second_tenants_only_job_second_not_after_all_of_the_first_tenants', async () => {
    const a = await (await tenantQueuing('a'))(10);
    const [b] = await (await tenantQueuing('b'))(1);
    expect(await claimAll()).toEqual([a[0], b, ...a.slice(1)]);
  });

  it('rotates_round_robin_over_three_tenants_then_oldest_first_within_each', async () => {
    const queueA = await tenantQueuing('a');
    const queueB = await tenantQueuing('b');
    const queueC = await tenantQueuing('c');
    const a = await queueA(3);
    const b = await queueB(2);
    const c = await queueC(1);
    expect(await claimAll()).toEqual([a[0], b[0], c[0], a[1], b[1], a[2]]);
  });

  it('serves_a_tenant_not_yet_served_before_one_just_served_even_if_that_ones_job_is_older', async () => {
    const queueA = await tenantQueuing('a');
    const queueB = await tenantQueuing('b');
    const [a1, a2] = await queueA(2);
    const first = (await worker.claim())!;
    expect(first.job.id).toBe(a1);
    const [b1] = await queueB(1); // younger than a2, but B has not been served yet
    expect((await worker.claim())!.job.id).toBe(b1);
    expect((await worker.claim())!.job.id).toBe(a2);
  });

  it('keeps_the_model_filter_of_the_claim', async () => {
    const a = await (await tenantQueuing('a'))(2);
    expect(await worker.claim(['another-model'])).toBeNull();
    expect((await worker.claim(['tiny-arith']))!.job.id).toBe(a[0]);
  });
});
