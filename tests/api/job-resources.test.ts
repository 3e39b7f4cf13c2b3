/**
 * resources.devices (issue 15): a job states the devices it trains on; a worker claims only jobs that fit its
 * device count (src/jobs/claim.ts); create refuses, naming resources.devices, what cannot split over the devices.
 * Real HTTP against the app on loopback, a real SQLite database, the /internal protocol as a worker speaks it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { listen } from '../helpers/server';
import { TestWorker } from '../helpers/worker-client';

let t: TestApp;
let server: Awaited<ReturnType<typeof listen>>;
let api: ReturnType<typeof client>;
const httpFetch = (url: string, init?: RequestInit) => fetch(url, init);

beforeEach(async () => {
  t = await makeTestApp();
  server = await listen(t.app);
  api = client(httpFetch, (await t.newTenant()).key, server.base);
});
afterEach(async () => {
  await server.close();
  t.close();
});

const HP = { group_size: 4, mini_batch_size: 1, batch_size: 2 };

async function create(extra: Record<string, unknown>) {
  const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
  return api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id, seed: 3, method: { type: 'soft_grpo', hyperparameters: HP }, ...extra });
}

async function claimWith(devices: number | undefined) {
  const res = await httpFetch(`${server.base}/internal/jobs/claim`, {
    method: 'POST',
    headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ worker_id: `w-${devices}`, ...(devices === undefined ? {} : { devices }) }),
  });
  return res.status === 204 ? null : ((await res.json()) as { job: { id: string; resources: { devices: number } } });
}

describe('resources.devices', () => {
  it('defaults_to_one_device_and_is_returned_on_the_job', async () => {
    const res = await create({});
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).resources).toEqual({ devices: 1 });
    const two = (await (await create({ resources: { devices: 2 } })).json()) as any;
    expect(two.resources).toEqual({ devices: 2 });
    expect(((await (await api.get(`/v1/finetune/${two.id}`)).json()) as any).resources).toEqual({ devices: 2 });
  });

  it('a_worker_claims_only_jobs_that_fit_its_devices', async () => {
    const big = (await (await create({ resources: { devices: 4 } })).json()) as { id: string };
    const small = (await (await create({})).json()) as { id: string };
    // a worker that says nothing has one device (workers that predate the field): the 4-device job is not for it
    expect((await claimWith(undefined))!.job.id).toBe(small.id);
    expect(await claimWith(undefined)).toBeNull();
    expect(await claimWith(2)).toBeNull();
    const claimed = (await claimWith(8))!;
    expect(claimed.job.id).toBe(big.id);
    expect(claimed.job.resources).toEqual({ devices: 4 });
  });

  it('rejects_devices_that_do_not_divide_every_mini_batch_or_come_with_lora', async () => {
    const uneven = await create({ resources: { devices: 3 } });
    expect(uneven.status).toBe(400);
    const error = ((await uneven.json()) as any).error;
    expect(error).toMatchObject({ param: 'resources.devices', code: 'invalid_resources' });
    expect(error.message).toContain('must divide the 4 rollouts of a mini-batch');
    const lora = await create({ resources: { devices: 2 }, method: { type: 'soft_grpo', hyperparameters: { ...HP, lora_rank: 8 } } });
    expect(lora.status).toBe(400);
    expect(((await lora.json()) as any).error).toMatchObject({ param: 'resources.devices', code: 'invalid_resources' });
    // accepted before contract/resources.json had the last-mini-batch rule, then hung on 2 ranks: 3 prompts in
    // mini-batches of 2 leave a last mini-batch of 1 prompt x 3 rollouts, which 2 devices cannot split
    const partial = await create({ resources: { devices: 2 }, method: { type: 'soft_grpo', hyperparameters: { batch_size: 3, mini_batch_size: 2, group_size: 3 } } });
    expect(partial.status).toBe(400);
    const last = ((await partial.json()) as any).error;
    expect(last).toMatchObject({ param: 'resources.devices', code: 'invalid_resources' });
    expect(last.message).toContain("must divide the 3 rollouts of a step's last mini-batch (batch_size 3 is not a multiple of mini_batch_size 2");
    const split = await create({ resources: { devices: 2 }, method: { type: 'soft_grpo', hyperparameters: { batch_size: 3, mini_batch_size: 2, group_size: 2 } } });
    expect(split.status).toBe(200);
    for (const bad of [{ devices: 0 }, { devices: 65 }, { devices: 1.5 }, { gpus: 2 }]) {
      const res = await create({ resources: bad });
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error.param).toMatch(/^resources/);
    }
    const worker = await httpFetch(`${server.base}/internal/jobs/claim`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ worker_id: 'w', devices: 0 }),
    });
    expect(worker.status).toBe(400);
    expect(((await worker.json()) as any).error.param).toBe('devices');
  });
});
