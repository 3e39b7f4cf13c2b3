/**
 * POST /v1/reason and POST /v1/chat/completions end to end through the real app (tests/helpers: real SQLite, real
 * blob folder, API keys) with the onnxruntime-node engine on the bundled tiny model (models/tiny, or TINY_MODEL_DIR).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app';
import { client } from '../helpers/http';
import { MODEL, QUESTION, makeReasoningApp, sseData } from '../helpers/reasoning';

const SHORT = { max_tokens: 48, soft_thinking: { max_thinking_tokens: 32 } };

let t: TestApp;
let api: Awaited<ReturnType<typeof makeReasoningApp>>['api'];

beforeAll(async () => {
  ({ t, api } = await makeReasoningApp());
}, 60_000);

afterAll(() => t?.close());

async function reason(body: Record<string, unknown>) {
  const res = await api.post('/v1/reason', { model: MODEL, prompt: QUESTION, ...SHORT, ...body });
  return { status: res.status, body: (await res.json()) as any };
}

describe('POST /v1/reason', () => {
  it('returns n samples with reasoning under both names, a majority vote and consistent usage', async () => {
    const { status, body } = await reason({ n: 4, seed: 7 });
    expect(status).toBe(200);
    expect(body.object).toBe('reason.result');
    expect(body.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    for (const c of body.choices) {
      expect(c.reasoning_content).toBe(c.reasoning);
      expect(['stop', 'length']).toContain(c.finish_reason);
      expect(c.usage.completion_tokens).toBe(c.usage.reasoning_tokens + c.usage.answer_tokens);
      expect(c.usage.completion_tokens).toBeGreaterThan(0);
      expect(c.usage.completion_tokens).toBeLessThanOrEqual(48);
    }
    const sum = (f: (c: any) => number) => body.choices.reduce((s: number, c: any) => s + f(c), 0);
    expect(body.usage.reasoning_tokens).toBe(sum((c) => c.usage.reasoning_tokens));
    expect(body.usage.answer_tokens).toBe(sum((c) => c.usage.answer_tokens));
    expect(body.usage.prompt_tokens).toBeGreaterThan(10);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    const extracted = body.choices.map((c: any) => c.extracted_answer).filter((a: string | null) => a !== null);
    const counts = new Map<string, number>();
    for (const a of extracted) counts.set(a, (counts.get(a) ?? 0) + 1);
    expect(body.aggregate.votes).toBe(Math.max(0, ...counts.values()));
    if (body.aggregate.answer !== null) expect(counts.get(body.aggregate.answer)).toBe(body.aggregate.votes);
    expect(body.aggregate.agreement).toBeCloseTo(body.aggregate.votes / 4, 12);
    expect(body.aggregate.samples).toBe(4);
  }, 60_000);

  it('reproduces the same samples for the same seed, and messages equal to the prompt give the same result', async () => {
    const a = await reason({ n: 3, seed: 1234 });
    const b = await reason({ n: 3, seed: 1234 });
    const c = await api.post('/v1/reason', { model: MODEL, messages: [{ role: 'user', content: QUESTION }], n: 3, seed: 1234, ...SHORT });
    expect(a.status).toBe(200);
    expect(b.body.choices).toEqual(a.body.choices);
    expect(((await c.json()) as any).choices).toEqual(a.body.choices);
    expect(a.body.seed).toBe(1234);
  }, 60_000);

  it('adaptive voting stops once the leader cannot be overtaken and its samples are a prefix of the full run', async () => {
    // noise off and greedy answers: every sample agrees, so with n = 8 in batches of 2 the vote is decided after 6
    const settings = { n: 8, seed: 3, temperature: 0, soft_thinking: { noise_scale: 0, max_thinking_tokens: 32 } };
    const vote = { extract: 'regex', pattern: '[\\s\\S]*', normalize: 'exact' };
    const full = await reason({ ...settings, vote });
    const adaptive = await reason({ ...settings, vote: { ...vote, adaptive: true, adaptive_batch_size: 2 } });
    expect(full.status).toBe(200);
    expect(adaptive.status).toBe(200);
    expect(full.body.aggregate.samples).toBe(8);
    expect(adaptive.body.aggregate.samples).toBe(6);
    expect(adaptive.body.choices).toEqual(full.body.choices.slice(0, 6));
    expect(adaptive.body.aggregate.answer).toBe(full.body.aggregate.answer);
    expect(adaptive.body.usage.completion_tokens).toBeLessThan(full.body.usage.completion_tokens);
  }, 60_000);

  it('streams chat-completion-style chunks that add up to the non-streamed result, then the vote and [DONE]', async () => {
    const request = { model: MODEL, prompt: QUESTION, ...SHORT, n: 2, seed: 99 };
    const plain = (await (await api.post('/v1/reason', request)).json()) as any;
    const res = await api.post('/v1/reason', { ...request, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const data = await sseData(res);
    expect(data[data.length - 1]).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    const vote = chunks[chunks.length - 1];
    expect(vote.object).toBe('reason.vote');
    expect(vote.aggregate).toEqual(plain.aggregate);
    expect(vote.usage).toEqual(plain.usage);
    for (const choice of plain.choices) {
      const mine = chunks.filter((c) => c.object === 'reason.chunk').flatMap((c) => c.choices).filter((c: any) => c.index === choice.index);
      expect(mine.map((c: any) => c.delta.reasoning_content ?? '').join('')).toBe(choice.reasoning);
      expect(mine.map((c: any) => c.delta.reasoning ?? '').join('')).toBe(choice.reasoning);
      expect(mine.map((c: any) => c.delta.content ?? '').join('')).toBe(choice.answer);
      const last = mine[mine.length - 1];
      expect(last.finish_reason).toBe(choice.finish_reason);
      expect(last.extracted_answer).toBe(choice.extracted_answer);
    }
  }, 60_000);
});

describe('POST /v1/chat/completions', () => {
  it('answers OpenAI-shaped choices with reasoning_content and usage for n samples', async () => {
    const res = await api.post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: QUESTION }], n: 2, max_tokens: 40, seed: 5 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.object).toBe('chat.completion');
    expect(body.choices).toHaveLength(2);
    for (const c of body.choices) {
      expect(c.message.role).toBe('assistant');
      expect(typeof c.message.content).toBe('string');
      expect(c.message.reasoning_content).toBe(c.message.reasoning);
    }
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBeLessThanOrEqual(body.usage.completion_tokens);
  }, 60_000);

  it('streams chat.completion.chunk events with a usage chunk and [DONE], matching the plain answer', async () => {
    const request = { model: MODEL, messages: [{ role: 'user', content: QUESTION }], n: 2, max_tokens: 40, seed: 5 };
    const plain = (await (await api.post('/v1/chat/completions', request)).json()) as any;
    const res = await api.post('/v1/chat/completions', { ...request, stream: true, stream_options: { include_usage: true } });
    const data = await sseData(res);
    expect(data[data.length - 1]).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[chunks.length - 1].usage).toEqual(plain.usage);
    for (const choice of plain.choices) {
      const deltas = chunks.flatMap((c) => c.choices).filter((c: any) => c.index === choice.index);
      expect(deltas.map((c: any) => c.delta.content ?? '').join('')).toBe(choice.message.content);
      expect(deltas.map((c: any) => c.delta.reasoning_content ?? '').join('')).toBe(choice.message.reasoning_content);
      expect(deltas[deltas.length - 1].finish_reason).toBe(choice.finish_reason);
    }
  }, 60_000);
});

describe('a hostile vote pattern (issue 11)', () => {
  it('answers_a_catastrophic_backtracking_vote_pattern_and_healthz_meanwhile', async () => {
    // the attack of issue 11: with JavaScript's backtracking RegExp, extracting (.*.*)*X from a hot (long, X-less)
    // answer took exponential time and froze the event loop; on RE2 it is linear, so both requests simply complete
    const attack = reason({
      n: 2,
      seed: 42,
      max_tokens: 40,
      temperature: 20,
      top_k: 0,
      top_p: 1,
      soft_thinking: { max_thinking_tokens: 4 },
      vote: { extract: 'regex', pattern: '(.*.*)*X', normalize: 'exact' },
    });
    const health = await t.fetch('/healthz');
    expect(health.status).toBe(200);
    const { status, body } = await attack;
    expect(status).toBe(200);
    expect(body.choices).toHaveLength(2);
    for (const c of body.choices) expect(c.extracted_answer === null || c.answer.includes('X')).toBe(true);
  }, 120_000);
});

describe('bad input is a 4xx naming the field', () => {
  it.each([
    [{ model: 'no-such-model' }, 404, 'model'],
    [{ n: 0 }, 400, 'n'],
    [{ n: 65 }, 400, 'n'],
    [{ mode: 'discrete', soft_thinking: { top_k: 5 } }, 400, 'soft_thinking'],
    [{ top_p: 1.5 }, 400, 'top_p'],
    [{ soft_thinking: { top_p: 0 } }, 400, 'soft_thinking.top_p'],
    [{ soft_thinking: { gumbel_tau: 0 } }, 400, 'soft_thinking.gumbel_tau'],
    [{ messages: [{ role: 'user', content: 'hi' }] }, 400, 'prompt'],
    [{ vote: { extract: 'regex' } }, 400, 'vote.pattern'],
    [{ vote: { extract: 'regex', pattern: '(' } }, 400, 'vote.pattern'],
    [{ vote: { extract: 'regex', pattern: '(a)\\1' } }, 400, 'vote.pattern'],
    [{ vote: { extract: 'regex', pattern: 'a'.repeat(513) } }, 400, 'vote.pattern'],
    [{ vote: { extract: 'regex', pattern: '\\p{L}{1000}' } }, 400, 'vote.pattern'],
    [{ seed: -1 }, 400, 'seed'],
    [{ max_tokens: 10, soft_thinking: { max_thinking_tokens: 20 } }, 400, 'soft_thinking.max_thinking_tokens'],
    [{ prompt: '7 + '.repeat(5000) }, 400, 'prompt'],
    [{ prompt: undefined, messages: [{ role: 'user', content: '7 + '.repeat(5000) }] }, 400, 'messages'],
    [{ max_tokens: 1_000_000 }, 400, 'max_tokens'],
  ])('%j -> %i naming %s', async (override, status, param) => {
    const body: Record<string, unknown> = { model: MODEL, prompt: QUESTION, ...override };
    if ('prompt' in override && override.prompt === undefined) delete body.prompt;
    const res = await api.post('/v1/reason', body);
    expect(res.status).toBe(status);
    const error = ((await res.json()) as any).error;
    expect(error.param).toBe(param);
    expect(error.message).toContain(param.split('.').pop()!.replace(/\[\d+\]/, ''));
  });

  it('rejects contradictory chat settings and an unknown model on /v1/chat/completions', async () => {
    const discrete = await api.post('/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: QUESTION }],
      mode: 'discrete',
      soft_thinking: { noise_scale: 0 },
    });
    expect(discrete.status).toBe(400);
    expect(((await discrete.json()) as any).error.param).toBe('soft_thinking');
    const unknown = await api.post('/v1/chat/completions', { model: 'nope', messages: [{ role: 'user', content: 'hi' }] });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as any).error.param).toBe('model');
  });

  it('requires an API key', async () => {
    const res = await client(t.fetch).post('/v1/reason', { model: MODEL, prompt: QUESTION });
    expect(res.status).toBe(401);
  });
});
