/**
 * Per-tenant limits (src/tenants/), each reproducing an attack of issue 11 and asserting the fix: a tenant over its
 * unfinished-job quota, over its requests per minute (with the injected clock), and over its concurrent reasoning
 * samples gets 429 with retry-after, x-ratelimit-* headers and the error envelope, while another tenant is served;
 * a sample reservation is released when its request or stream ends (also when the client aborts), and expires when
 * its process died.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { GeneratedSample, GenerationHooks, GenerationRequest, ReasoningEngine } from '../../src/engine/types';
import { DEFAULT_TENANT_LIMITS, type TenantLimits } from '../../src/ports';
import { sampleReservations } from '../../src/db/schema';
import { RESERVATION_SECONDS } from '../../src/tenants/sample-budget';
import { makeTestApp, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';

let t: TestApp;
afterEach(() => t?.close());

async function appWith(limits: Partial<TenantLimits>) {
  t = await makeTestApp({ config: { tenantLimits: { ...DEFAULT_TENANT_LIMITS, ...limits } } });
  return t;
}

async function tenantClient() {
  return client(t.fetch, (await t.newTenant()).key);
}

const envelope = async (res: Response) =>
  ((await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;

async function expectRateLimited(res: Response, param: string | null = null) {
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(res.headers.get('x-request-id')).toBeTruthy();
  const error = await envelope(res);
  expect(error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', param });
  return error;
}

const rowsOf = (table: string, tenantId: string) =>
  (t.deps.database.sqlite.prepare(`select count(*) as n from ${table} where tenant_id = ?`).get(tenantId) as { n: number }).n;

describe('unfinished fine-tuning jobs per tenant', () => {
  async function withFile() {
    const { key, tenantId } = await t.newTenant();
    const api = client(t.fetch, key);
    const file = (await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
    const create = () => api.post('/v1/finetune', { model: 'tiny-arith', training_file: file.id });
    return { api, tenantId, create };
  }

  it('refuses_a_job_over_the_quota_with_429_and_headers_while_another_tenant_still_creates', async () => {
    await appWith({ activeJobs: 2 });
    const a = await withFile();
    const first = (await (await a.create()).json()) as { id: string };
    const second = (await (await a.create()).json()) as { id: string };
    await a.api.post(`/v1/finetune/${second.id}/pause`); // a paused job keeps its place

    const refused = await a.create();
    expect(refused.headers.get('retry-after')).toBe('60');
    expect(refused.headers.get('x-ratelimit-limit-jobs')).toBe('2');
    expect(refused.headers.get('x-ratelimit-remaining-jobs')).toBe('0');
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe(String(DEFAULT_TENANT_LIMITS.requestsPerMinute));
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toMatch(/^\d+$/);
    expect(refused.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);
    expect((await expectRateLimited(refused)).message).toMatch(/2 unfinished fine-tuning jobs/);
    expect(rowsOf('jobs', a.tenantId)).toBe(2);

    const b = await withFile();
    expect((await b.create()).status).toBe(200);

    // A finished (here: cancelled) job gives its place back.
    await a.api.post(`/v1/finetune/${first.id}/cancel`);
    expect((await a.create()).status).toBe(200);
    expect((await a.create()).status).toBe(429);
  });

  it('never_lets_concurrent_creates_pass_the_quota_and_leaves_no_trace_of_the_refused_ones', async () => {
    await appWith({ activeJobs: 3 });
    const a = await withFile();
    const eventsBefore = t.rows().job_events;
    const answers = await Promise.all(Array.from({ length: 12 }, () => a.create()));
    expect(answers.map((r) => r.status).sort()).toEqual([...Array(3).fill(200), ...Array(9).fill(429)]);
    expect(rowsOf('jobs', a.tenantId)).toBe(3);
    expect(t.rows().job_events - eventsBefore).toBe(3 * 3); // the three kept jobs' creation events only
  });
});

describe('requests per minute per tenant', () => {
  it('answers_429_over_the_limit_then_recovers_when_the_window_ends', async () => {
    await appWith({ requestsPerMinute: 3 });
    t.clock.ms = Math.ceil(t.clock.ms / 60_000) * 60_000 + 10_000; // 10 s into a window
    const { key, tenantId } = await t.newTenant();
    const a = client(t.fetch, key);
    for (const remaining of [2, 1, 0]) {
      const ok = await a.get('/v1/files');
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(ok.headers.get('x-ratelimit-remaining-requests')).toBe(String(remaining));
      expect(ok.headers.get('x-ratelimit-reset-requests')).toBe('50s');
    }
    const refused = await a.post('/v1/finetune', { model: 'tiny-arith', training_file: 'file-x' });
    expect(refused.headers.get('retry-after')).toBe('50');
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused.headers.get('x-ratelimit-reset-requests')).toBe('50s');
    await expectRateLimited(refused);

    // Another tenant, the worker routes and /healthz are not held back by A's window.
    expect((await (await tenantClient()).get('/v1/models')).status).toBe(200);
    expect((await t.fetch('http://localhost/healthz')).status).toBe(200);
    const claim = await t.fetch('http://localhost/internal/jobs/claim', {
      method: 'POST',
      headers: { authorization: 'Bearer wt-test-worker-token', 'content-type': 'application/json' },
      body: JSON.stringify({ worker_id: 'w' }),
    });
    expect(claim.status).toBe(204);

    t.clock.advance(49);
    expect((await a.get('/v1/files')).status).toBe(429);
    t.clock.advance(1);
    const recovered = await a.get('/v1/files');
    expect(recovered.status).toBe(200);
    expect(recovered.headers.get('x-ratelimit-remaining-requests')).toBe('2');
    expect(recovered.headers.get('x-ratelimit-reset-requests')).toBe('60s');
    // The window that ended was deleted when the new one opened.
    expect(rowsOf('request_windows', tenantId)).toBe(1);
  });

  it('puts_the_rate_limit_headers_on_idempotent_replays_too', async () => {
    await appWith({ requestsPerMinute: 100 });
    const a = await tenantClient();
    const file = (await (await a.upload(jsonl(...GOOD_LINES))).json()) as { id: string };
    const body = { model: 'tiny-arith', training_file: file.id };
    await a.post('/v1/finetune', body, { 'idempotency-key': 'k' });
    const replay = await a.post('/v1/finetune', body, { 'idempotency-key': 'k' });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.headers.get('x-ratelimit-remaining-requests')).toBe('97');
  });
});

/**
 * An engine that streams one delta per sample, then holds requests with seed HOLD until `release()` or the client's
 * abort; other seeds answer at once.
 */
const HOLD = 1;
class HeldEngine implements ReasoningEngine {
  running = 0;
  private waiting: (() => void)[] = [];
  describe() {
    return { id: 'tiny-arith', context_length: 512, engine: 'onnx' as const };
  }
  async generate(request: GenerationRequest, hooks: GenerationHooks = {}) {
    this.running++;
    try {
      for (const i of request.samples) hooks.onEvent?.({ type: 'delta', sample: i, phase: 'reasoning', text: 'hmm' });
      if (request.seed === HOLD)
        await new Promise<void>((resolve) => {
          this.waiting.push(resolve);
          hooks.signal?.addEventListener('abort', () => resolve(), { once: true });
        });
      const finish = hooks.signal?.aborted ? ('cancelled' as const) : ('stop' as const);
      const samples: GeneratedSample[] = request.samples.map((sample) => ({
        sample,
        reasoning: 'hmm',
        answer: '5',
        token_ids: [1, 2],
        reasoning_tokens: 1,
        answer_tokens: 1,
        finish_reason: finish,
        thinking_end: 'emitted',
      }));
      return { prompt_tokens: 3, samples };
    } finally {
      this.running--;
    }
  }
  release() {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

describe('concurrent reasoning samples per tenant', () => {
  let engine: HeldEngine;
  async function withEngine(concurrentSamples: number) {
    await appWith({ concurrentSamples });
    engine = new HeldEngine();
    t.deps.engines = { get: async () => engine };
  }
  const reason = (api: ReturnType<typeof client>, n: number, extra: Record<string, unknown> = {}) =>
    api.post('/v1/reason', { model: 'tiny-arith', prompt: 'What is 2+3?', n, seed: 7, ...extra });
  const reservedSamples = () =>
    (t.deps.database.sqlite.prepare('select coalesce(sum(samples), 0) as n from sample_reservations').get() as { n: number }).n;

  it('refuses_reasoning_over_the_sample_budget_while_another_tenant_is_served_and_releases_after_the_request', async () => {
    await withEngine(4);
    const a = await tenantClient();
    const b = await tenantClient();
    const held = reason(a, 3, { seed: HOLD });
    await vi.waitFor(() => expect(engine.running).toBe(1));
    expect(reservedSamples()).toBe(3);

    const refused = await reason(a, 2);
    expect(refused.headers.get('x-ratelimit-limit-samples')).toBe('4');
    expect(refused.headers.get('x-ratelimit-remaining-samples')).toBe('1');
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await expectRateLimited(refused, 'n')).message).toMatch(/3 of its 4 concurrent samples/);
    // Chat completions draw from the same budget; what still fits is served.
    const chat = await a.post('/v1/chat/completions', { model: 'tiny-arith', messages: [{ role: 'user', content: 'hi' }], n: 2 });
    expect(chat.status).toBe(429);
    expect((await reason(a, 1)).status).toBe(200);
    expect((await reason(b, 4)).status).toBe(200);

    engine.release();
    expect((await held).status).toBe(200);
    expect(reservedSamples()).toBe(0);
    expect((await reason(a, 4)).status).toBe(200);
    expect(reservedSamples()).toBe(0);
  });

  it('releases_the_reservation_when_the_client_aborts_a_stream', async () => {
    await withEngine(4);
    const a = await tenantClient();
    const stream = await reason(a, 4, { seed: HOLD, stream: true });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('reason.chunk');
    expect(reservedSamples()).toBe(4);
    expect((await reason(a, 1)).status).toBe(429);

    await reader.cancel();
    await vi.waitFor(() => expect(reservedSamples()).toBe(0));
    expect((await reason(a, 4)).status).toBe(200);
  });

  it('releases_the_reservation_when_a_stream_ends_normally', async () => {
    await withEngine(4);
    const a = await tenantClient();
    const stream = await a.post('/v1/chat/completions', { model: 'tiny-arith', messages: [{ role: 'user', content: 'hi' }], n: 4, stream: true });
    expect(await stream.text()).toContain('[DONE]');
    await vi.waitFor(() => expect(reservedSamples()).toBe(0));
  });

  it('frees_the_samples_of_a_crashed_request_once_its_reservation_expires', async () => {
    await withEngine(4);
    const { key, tenantId } = await t.newTenant();
    const a = client(t.fetch, key);
    // What a process that died mid-request leaves behind: a reservation nobody releases or renews.
    const now = t.clock.now();
    await t.deps.database.db
      .insert(sampleReservations)
      .values({ id: 'samples-crashed', tenantId, samples: 4, expiresAt: now + RESERVATION_SECONDS * 1000, createdAt: now });
    expect((await reason(a, 1)).status).toBe(429);
    t.clock.advance(RESERVATION_SECONDS + 1);
    expect((await reason(a, 4)).status).toBe(200);
    expect(rowsOf('sample_reservations', tenantId)).toBe(0); // the expired row went with the next release
  });

  it('answers_400_naming_n_when_one_request_exceeds_the_whole_limit', async () => {
    await withEngine(4);
    const res = await reason(await tenantClient(), 5);
    expect(res.status).toBe(400);
    expect(await envelope(res)).toMatchObject({ param: 'n', code: 'invalid_value' });
    expect(reservedSamples()).toBe(0);
  });
});
