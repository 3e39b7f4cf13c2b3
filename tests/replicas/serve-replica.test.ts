/**
 * A real `python -m softgrpo.serve --api ...` process registering itself with the Node API over HTTP: requests for
 * the bundled tiny model go to it with signed URLs of the model files (no model given to serve at start-up), the
 * answer streams through the remote engine, the replica reports the model it now holds, and it drops out when it
 * stops. Before it registers, the model is known but has no engine (503); an unknown model is 404 either way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { apiKeys, tenants } from '../../src/db/schema';
import { buildNodeDeps, type NodeDeps } from '../../src/entry/node-deps';
import { newApiKey } from '../../src/middleware/auth';
import { ReplicaEngineRegistry } from '../../src/replicas/replica-engines';
import { ROOT, PYTHON } from '../../scripts/start-stack';
import { QUESTION, sseChunks } from '../helpers/reasoning';
import { listen } from '../helpers/server';

const WORKER_TOKEN = 'wt-replica-test';
let deps: NodeDeps;
let server: { base: string; close: () => Promise<void> };
let replica: ChildProcess | null = null;
let key: string;
const dataDir = mkdtempSync(join(tmpdir(), 'replica-test-'));
const output: string[] = [];

beforeAll(async () => {
  deps = await buildNodeDeps({ dataDir, modelsDir: join(ROOT, 'models'), workerToken: WORKER_TOKEN, signingSecret: 'replica-test-secret' });
  deps.engines = new ReplicaEngineRegistry(() => deps); // replicas only: no onnx fallback
  server = await listen(createApp(deps));
  const tenantId = deps.ids.next('org');
  await deps.database.db.insert(tenants).values({ id: tenantId, name: 'acme', createdAt: Date.now() });
  const k = newApiKey(deps.ids);
  await deps.database.db.insert(apiKeys).values({ id: deps.ids.next('key'), tenantId, keyHash: k.hash, prefix: k.prefix, name: 't', createdAt: Date.now() });
  key = k.key;
});

afterAll(async () => {
  replica?.kill('SIGKILL');
  await server?.close();
  deps?.database.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const api = (path: string, body?: unknown) =>
  fetch(`${server.base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const replicas = async () =>
  ((await (await fetch(`${server.base}/internal/replicas`, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } })).json()) as {
    data: { id: string; url: string; models: string[]; load: number }[];
  }).data;

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 90_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const got = await probe().catch(() => null);
    if (got) return got;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${output.join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const chat = { model: 'tiny-arith', messages: [{ role: 'user', content: QUESTION }], max_tokens: 24, temperature: 0, seed: 7 };

describe('a serving replica that registers itself', () => {
  it('answers_503_for_a_known_model_before_any_replica_and_404_for_an_unknown_one', async () => {
    const res = await api('/v1/chat/completions', chat);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('no_engines');
    expect((await api('/v1/chat/completions', { ...chat, model: 'no-such-model' })).status).toBe(404);
  });

  it('serves_the_model_it_is_sent_by_signed_urls_streaming_through_the_remote_engine', async () => {
    replica = spawn(PYTHON, ['-m', 'softgrpo.serve', '--api', server.base, '--port', '0', '--cache-dir', join(dataDir, 'serve-cache')], {
      cwd: join(ROOT, 'gpu-worker'),
      env: { ...process.env, WORKER_TOKEN, OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const s of [replica.stdout!, replica.stderr!]) s.on('data', (d: Buffer) => output.push(d.toString()));
    const [registered] = await waitFor('the replica to register', async () => ((await replicas()).length ? await replicas() : null));
    expect(registered.models).toEqual([]);

    const whole = (await (await api('/v1/chat/completions', chat)).json()) as { choices: { message: { content: string; reasoning_content?: string } }[] };
    expect(whole.choices[0].message.content).toBeTypeOf('string');

    const res = await api('/v1/chat/completions', { ...chat, stream: true });
    expect(res.status).toBe(200);
    const chunks = await sseChunks(res);
    const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    expect(text).toBe(whole.choices[0].message.content);
    // token-level: more content chunks than one per phase
    expect(chunks.filter((c) => c.choices?.[0]?.delta?.content || c.choices?.[0]?.delta?.reasoning_content).length).toBeGreaterThan(2);

    const held = await waitFor('a heartbeat with the held model', async () => (await replicas())[0]?.models.find((m) => m.startsWith('tiny-arith@')));
    expect(held).toMatch(/^tiny-arith@[0-9a-f]{16}$/);
  }, 180_000); // python start-up, model download and load, on a busy CPU

  it('stops_decoding_on_the_replica_when_the_client_goes_away', async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      // hot sampling: the tiny model rambles to the end of its context (about 200 steps) unless stopped
      body: JSON.stringify({ ...chat, temperature: 2, max_tokens: 200, stream: true, soft_thinking: { temperature: 2, max_thinking_tokens: 180 } }),
      signal: controller.signal,
    });
    expect(res.status, res.status === 200 ? '' : await res.text()).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk arrived: decoding is under way
    controller.abort();
    const line = await waitFor('the replica to report the cancellation', async () =>
      output.join('').match(/generation cancelled after (\d+) of at most (\d+) steps/),
    );
    expect(Number(line[1])).toBeLessThan(Number(line[2]));
    await waitFor('the replica to be idle again', async () => (await replicas())[0]?.load === 0);
  }, 60_000);

  it('drops_out_when_the_replica_stops', async () => {
    replica!.kill('SIGTERM');
    await waitFor('the replica to deregister', async () => (await replicas()).length === 0);
    expect((await api('/v1/chat/completions', chat)).status).toBe(503);
  });
});
