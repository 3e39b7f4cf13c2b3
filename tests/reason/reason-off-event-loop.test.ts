/**
 * A heavy /v1/reason does not hold up the API thread: through the real app over real HTTP (tests/helpers), with the
 * Node engine registry as src/entry/node.ts builds it (onnxruntime-node in worker threads, bundled tiny model),
 * /healthz keeps answering while 32 samples decode.
 *
 * The assertion is an order of completion, not a time. Each /healthz round trip (sent after the previous answer)
 * needs at least one turn of the event loop, and an in-process engine decodes exactly one step per turn (onnxruntime
 * runs the forward synchronously in a setImmediate, the sampling follows in the same turn). So with the engine on
 * the event loop, a request of at most MAX_TOKENS steps finishes before HEALTH_CHECKS > MAX_TOKENS round trips can;
 * with the engine in a thread, the round trips do not wait for decoding at all.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app';
import { client } from '../helpers/http';
import { MODEL, QUESTION, makeReasoningApp } from '../helpers/reasoning';
import { listen } from '../helpers/server';

const MAX_TOKENS = 200;
const HEALTH_CHECKS = MAX_TOKENS + 50;
// Hot sampling keeps the tiny model from ending early, so that some samples decode all MAX_TOKENS steps.
const HOT = { temperature: 3, top_k: 0, top_p: 1 };
const HEAVY = {
  model: MODEL,
  prompt: QUESTION,
  n: 32,
  seed: 3,
  max_tokens: MAX_TOKENS,
  ...HOT,
  soft_thinking: { ...HOT, max_thinking_tokens: MAX_TOKENS },
};

let t: TestApp;
let server: Awaited<ReturnType<typeof listen>>;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  ({ t } = await makeReasoningApp());
  const { key } = await t.newTenant();
  server = await listen(t.app);
  api = client(fetch, key, server.base);
  // load the engine thread before measuring
  expect((await api.post('/v1/reason', { ...HEAVY, n: 1, max_tokens: 4, soft_thinking: { max_thinking_tokens: 4 } })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await server?.close();
  t?.close();
});

it('answers_healthz_more_times_than_a_heavy_reason_has_decode_steps_before_it_finishes', async () => {
  const finished: string[] = [];
  const heavy = api.post('/v1/reason', HEAVY).then(async (res) => {
    finished.push('reason');
    return { status: res.status, body: (await res.json()) as any };
  });
  for (let i = 0; i < HEALTH_CHECKS && !finished.includes('reason'); i++) {
    const res = await fetch(`${server.base}/healthz`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    finished.push('healthz');
  }
  const { status, body } = await heavy;
  expect(status).toBe(200);
  expect(body.choices).toHaveLength(32);
  // the request really ran MAX_TOKENS decode steps (its longest samples hit the cap)
  expect(Math.max(...body.choices.map((c: any) => c.usage.completion_tokens))).toBe(MAX_TOKENS);
  expect(finished.indexOf('reason')).toBe(HEALTH_CHECKS);
}, 120_000);
