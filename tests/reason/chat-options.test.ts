/**
 * The OpenAI options of /v1/chat/completions (and the shared ones of /v1/reason) through the real app with the
 * bundled tiny model: stop, logprobs / top_logprobs, temperature 0 greedy end to end, the developer role and text
 * content parts, and 400s naming every OpenAI field that is not implemented. The tiny model answers the question
 * greedily with thinking "7 + 3 = 10\n" and answer "\n\\boxed{10}".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app';
import { MODEL, QUESTION, makeReasoningApp, sseChunks } from '../helpers/reasoning';

let t: TestApp;
let api: Awaited<ReturnType<typeof makeReasoningApp>>['api'];

beforeAll(async () => {
  ({ t, api } = await makeReasoningApp());
}, 60_000);

afterAll(() => t?.close());

const USER = [{ role: 'user', content: QUESTION }];
const GREEDY = { temperature: 0, max_tokens: 64 };

async function chat(body: Record<string, unknown>) {
  const res = await api.post('/v1/chat/completions', { model: MODEL, messages: USER, ...body });
  return { status: res.status, body: (await res.json()) as any };
}

describe('stop', () => {
  it('cuts_the_answer_before_the_first_stop_string_with_finish_reason_stop', async () => {
    const full = await chat({ ...GREEDY });
    const cut = await chat({ ...GREEDY, stop: ['}', '{1'] });
    expect(cut.status).toBe(200);
    const answer = full.body.choices[0].message.content as string;
    expect(answer).toContain('{1');
    expect(cut.body.choices[0].message.content).toBe(answer.slice(0, answer.indexOf('{1')));
    expect(cut.body.choices[0].finish_reason).toBe('stop');
    expect(cut.body.usage.completion_tokens).toBeLessThan(full.body.usage.completion_tokens);
    expect(cut.body.choices[0].message.reasoning_content).toBe(full.body.choices[0].message.reasoning_content);
  }, 60_000);

  it('never_cuts_thinking', async () => {
    const full = await chat({ ...GREEDY });
    expect(full.body.choices[0].message.reasoning_content).toContain('=');
    const res = await chat({ ...GREEDY, stop: '=' });
    expect(res.body.choices[0].message).toEqual(full.body.choices[0].message);
  }, 60_000);

  it('streams_no_text_past_the_stop_string', async () => {
    const plain = await chat({ ...GREEDY, stop: '0}' });
    const chunks = await sseChunks(await api.post('/v1/chat/completions', { model: MODEL, messages: USER, ...GREEDY, stop: '0}', stream: true }));
    const text = chunks.flatMap((c) => c.choices).map((c: any) => c.delta.content ?? '').join('');
    expect(text).toBe(plain.body.choices[0].message.content);
    expect(text.endsWith('{1')).toBe(true);
  }, 60_000);

  it('applies_to_reason_answers_and_their_extracted_answer', async () => {
    const res = await api.post('/v1/reason', { model: MODEL, prompt: QUESTION, ...GREEDY, stop: ['}'], vote: { extract: 'last_number' } });
    const body = (await res.json()) as any;
    expect(body.choices[0].answer).toBe('\n\\boxed{10');
    expect(body.choices[0].finish_reason).toBe('stop');
    expect(body.aggregate.answer).toBe('10');
  }, 60_000);
});

describe('logprobs', () => {
  it('reports_each_answer_token_with_its_bytes_and_sorted_alternatives', async () => {
    const { status, body } = await chat({ ...GREEDY, logprobs: true, top_logprobs: 3 });
    expect(status).toBe(200);
    const choice = body.choices[0];
    const content = choice.logprobs.content as any[];
    const answerTokens = body.usage.completion_tokens - body.usage.completion_tokens_details.reasoning_tokens;
    expect(content).toHaveLength(answerTokens - 1); // every answer token but eos
    expect(Buffer.from(content.flatMap((e) => e.bytes)).toString('utf8')).toBe(choice.message.content);
    for (const e of content) {
      expect(e.token).toBe(Buffer.from(e.bytes).toString('utf8'));
      expect(e.top_logprobs).toHaveLength(3);
      const tops = e.top_logprobs.map((c: any) => c.logprob);
      expect(tops).toEqual([...tops].sort((a, b) => b - a));
      expect(e.top_logprobs[0]).toEqual({ token: e.token, bytes: e.bytes, logprob: e.logprob }); // greedy: the argmax
      expect(e.logprob).toBeLessThanOrEqual(0);
    }
    expect(choice.logprobs.refusal).toBeNull();
  }, 60_000);

  it('are_null_unless_asked_and_top_logprobs_needs_logprobs', async () => {
    expect((await chat({ ...GREEDY })).body.choices[0].logprobs).toBeNull();
    const none = await chat({ ...GREEDY, logprobs: true });
    expect(none.body.choices[0].logprobs.content.every((e: any) => e.top_logprobs.length === 0)).toBe(true);
    const bad = await chat({ top_logprobs: 2 });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'top_logprobs']);
  }, 60_000);

  it('stream_with_the_answer_deltas_and_add_up_to_the_plain_ones', async () => {
    const body = { ...GREEDY, n: 2, logprobs: true, top_logprobs: 1 };
    const plain = await chat(body);
    const chunks = await sseChunks(await api.post('/v1/chat/completions', { model: MODEL, messages: USER, ...body, stream: true }));
    for (const choice of plain.body.choices) {
      const mine = chunks.flatMap((c) => c.choices).filter((c: any) => c.index === choice.index);
      const streamed = mine.flatMap((c: any) => c.logprobs?.content ?? []);
      expect(streamed).toEqual(choice.logprobs.content);
      expect(mine.filter((c: any) => c.delta.reasoning_content).every((c: any) => c.logprobs === undefined)).toBe(true);
    }
  }, 60_000);
});

describe('temperature 0', () => {
  it('is_greedy_end_to_end_whatever_the_seed', async () => {
    const runs = await Promise.all([1, 2, 3].map((seed) => chat({ ...GREEDY, n: 2, seed })));
    const messages = runs.flatMap((r) => r.body.choices.map((c: any) => c.message));
    expect(new Set(messages.map((m) => JSON.stringify(m))).size).toBe(1);
    const reason = await Promise.all([4, 5].map((seed) => api.post('/v1/reason', { model: MODEL, prompt: QUESTION, ...GREEDY, seed })));
    const answers = await Promise.all(reason.map(async (r) => ((await r.json()) as any).choices[0]));
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0].answer).toBe(messages[0].content);
  }, 60_000);

  it('with_gumbel_noise_is_a_400_naming_soft_thinking_noise_scale', async () => {
    const res = await chat({ temperature: 0, soft_thinking: { noise_scale: 1 } });
    expect([res.status, res.body.error.param]).toEqual([400, 'soft_thinking.noise_scale']);
    const reason = await api.post('/v1/reason', { model: MODEL, prompt: QUESTION, temperature: 0, soft_thinking: { noise_scale: 0.5 } });
    expect(((await reason.json()) as any).error.param).toBe('soft_thinking.noise_scale');
  });
});

describe('messages', () => {
  it('treat_the_developer_role_as_system', async () => {
    const as = (role: string) => chat({ ...GREEDY, seed: 8, messages: [{ role, content: 'Answer in a box.' }, ...USER] });
    const [developer, system] = await Promise.all([as('developer'), as('system')]);
    expect(developer.status).toBe(200);
    expect(developer.body.choices).toEqual(system.body.choices);
    expect(developer.body.usage).toEqual(system.body.usage);
  }, 60_000);

  it('accept_text_content_parts_as_their_joined_text', async () => {
    const parts = [{ type: 'text', text: 'Mia has 7 apples.' }, { type: 'text', text: 'She buys 3 more. How many apples does Mia have now?' }];
    const [asParts, asText] = await Promise.all([
      chat({ ...GREEDY, messages: [{ role: 'user', content: parts }] }),
      chat({ ...GREEDY, messages: [{ role: 'user', content: 'Mia has 7 apples.\nShe buys 3 more. How many apples does Mia have now?' }] }),
    ]);
    expect(asParts.status).toBe(200);
    expect(asParts.body.choices).toEqual(asText.body.choices);
    expect(asParts.body.usage).toEqual(asText.body.usage);
    const reason = await api.post('/v1/reason', { model: MODEL, messages: [{ role: 'developer', content: [{ type: 'text', text: QUESTION }] }], max_tokens: 8 });
    expect(reason.status).toBe(200);
  }, 60_000);

  it('answer_a_non_text_content_part_with_400_naming_its_type', async () => {
    const content = [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }];
    const res = await chat({ messages: [{ role: 'user', content }] });
    expect([res.status, res.body.error.param]).toEqual([400, 'messages[0].content[1].type']);
    expect(res.body.error.message).toContain('image_url');
  });
});

describe('OpenAI fields that are not implemented', () => {
  it.each([
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
    [{ tool_choice: 'auto' }, 'tool_choice'],
    [{ response_format: { type: 'json_object' } }, 'response_format.type'],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }, 'response_format.type'],
    [{ logit_bias: { '12': 5 } }, 'logit_bias'],
    [{ presence_penalty: 0.5 }, 'presence_penalty'],
    [{ frequency_penalty: -1 }, 'frequency_penalty'],
    [{ functions: [{ name: 'f' }] }, 'functions'],
    [{ audio: { voice: 'alloy', format: 'mp3' } }, 'audio'],
    [{ modalities: ['text', 'audio'] }, 'modalities[1]'],
    [{ reasoning_effort: 'high' }, 'reasoning_effort'],
    [{ store: true }, 'store'],
    [{ messages: [{ role: 'tool', content: 'x', tool_call_id: 'c' }] }, 'messages[0].role'],
    [{ warp_speed: 9 }, 'warp_speed'],
  ])('%j is a 400 naming %s', async (override, param) => {
    const res = await chat(override);
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe(param);
    expect(res.body.error.message).toContain(param);
    if (param !== 'warp_speed' && !param.startsWith('messages')) expect(res.body.error.message).toContain('not supported');
  });

  it('are_accepted_at_their_neutral_values', async () => {
    const neutral = {
      tools: [],
      tool_choice: 'none',
      response_format: { type: 'text' },
      logit_bias: {},
      presence_penalty: 0,
      frequency_penalty: 0,
      modalities: ['text'],
      store: false,
      user: 'someone',
      parallel_tool_calls: false,
      metadata: { a: 'b' },
      stop: null,
      logprobs: null,
      top_logprobs: null,
    };
    const res = await chat({ ...neutral, max_tokens: 8 });
    expect(res.status).toBe(200);
  }, 60_000);
});

describe('streams', () => {
  it('a_chat_stream_is_replayed_for_the_same_idempotency_key', async () => {
    const key = { 'idempotency-key': 'chat-stream-1' };
    const body = { model: MODEL, messages: [{ role: 'user', content: QUESTION }], n: 2, max_tokens: 40, stream: true, stream_options: { include_usage: true } };
    const first = await sseChunks(await api.post('/v1/chat/completions', body, key));
    const replay = await sseChunks(await api.post('/v1/chat/completions', body, key));
    const text = (chunks: any[], i: number) => chunks.flatMap((c) => c.choices).filter((c: any) => c.index === i).map((c: any) => c.delta.content ?? '').join('');
    expect([text(replay, 0), text(replay, 1)]).toEqual([text(first, 0), text(first, 1)]);
    expect(replay.at(-1).usage).toEqual(first.at(-1).usage);
    expect(replay[0].id).toBe(first[0].id);
  }, 60_000);
});
