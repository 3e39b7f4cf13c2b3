/**
 * `soft_thoughts` on /v1/reason through the real app with the bundled tiny model (onnxruntime-node): off by default;
 * when asked, every soft thinking step of every choice lists the k token ids mixed into the model's next input,
 * their text and their mixture weights, the heaviest token of each step being the thinking text's token; recording
 * changes no sample; a stream carries the same thoughts on each choice's final chunk; discrete mode and a remote
 * engine answer 400 naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import type { TestApp } from '../helpers/app';
import { MODEL, QUESTION, makeReasoningApp, sseChunks } from '../helpers/reasoning';

let t: TestApp;
let api: Awaited<ReturnType<typeof makeReasoningApp>>['api'];

beforeAll(async () => {
  ({ t, api } = await makeReasoningApp());
}, 60_000);

afterAll(() => t?.close());

const BODY = { model: MODEL, prompt: QUESTION, n: 3, seed: 4242, max_tokens: 48, soft_thinking: { max_topk: 4 } };

async function reason(body: Record<string, unknown>) {
  const res = await api.post('/v1/reason', body);
  return { status: res.status, body: (await res.json()) as any };
}

const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

describe('soft_thoughts', () => {
  it('is_absent_unless_asked', async () => {
    const r = await reason(BODY);
    expect(r.status).toBe(200);
    for (const c of r.body.choices) expect(c).not.toHaveProperty('soft_thoughts');
  }, 60_000);

  it('lists_per_thinking_step_the_mixed_ids_tokens_and_weights_without_changing_the_samples', async () => {
    const plain = await reason(BODY);
    const r = await reason({ ...BODY, soft_thoughts: true });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.choices.map((c: any) => [c.reasoning, c.answer])).toEqual(plain.body.choices.map((c: any) => [c.reasoning, c.answer]));
    let mixedSteps = 0;
    for (const c of r.body.choices) {
      const steps = c.soft_thoughts as { ids: number[]; tokens: string[]; weights: number[] }[];
      // one step per emitted thinking token: the closing </think> (when thinking ended) is not a soft step
      expect(steps.length).toBe(c.usage.reasoning_tokens - (c.thinking_end === null ? 0 : 1));
      expect(steps.length).toBeGreaterThan(0);
      for (const s of steps) {
        expect(s.ids.length).toBeGreaterThanOrEqual(1);
        expect(s.ids.length).toBeLessThanOrEqual(4);
        expect(s.tokens).toHaveLength(s.ids.length);
        expect(s.weights).toHaveLength(s.ids.length);
        for (const w of s.weights) expect(w).toBeGreaterThanOrEqual(0);
        expect(s.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
        if (s.ids.length > 1 && Math.max(...s.weights) < 0.999) mixedSteps++;
      }
      // the heaviest token of each step is the one emitted: together they spell the thinking text
      expect(steps.map((s) => s.tokens[argmax(s.weights)]).join('')).toBe(c.reasoning);
    }
    expect(mixedSteps, 'some steps really mix several tokens').toBeGreaterThan(0);
  }, 60_000);

  it('streams_each_choices_thoughts_on_its_final_chunk', async () => {
    const full = await reason({ ...BODY, soft_thoughts: true });
    const res = await api.post('/v1/reason', { ...BODY, soft_thoughts: true, stream: true });
    expect(res.status).toBe(200);
    const finals = (await sseChunks(res)).flatMap((ch) => (ch.object === 'reason.chunk' ? ch.choices : [])).filter((c: any) => c.finish_reason);
    expect(finals).toHaveLength(BODY.n);
    for (const c of finals) expect(c.soft_thoughts).toEqual(full.body.choices.find((f: any) => f.index === c.index).soft_thoughts);
  }, 60_000);

  it('rejects_soft_thoughts_in_discrete_mode', async () => {
    const r = await reason({ model: MODEL, prompt: QUESTION, mode: 'discrete', soft_thoughts: true });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe('soft_thoughts');
  });

  it('rejects_soft_thoughts_for_a_model_served_by_a_remote_engine', async () => {
    const remote = await makeReasoningApp();
    try {
      remote.t.deps.engines = createNodeEngineRegistry({ models: { [MODEL]: { engine: 'remote', url: 'http://127.0.0.1:9', context_length: 512 } } });
      const res = await remote.api.post('/v1/reason', { model: MODEL, prompt: QUESTION, soft_thoughts: true });
      const body = (await res.json()) as any;
      expect(res.status).toBe(400);
      expect(body.error.param).toBe('soft_thoughts');
      expect(body.error.message).toContain('remote');
    } finally {
      remote.t.close();
    }
  });
});
