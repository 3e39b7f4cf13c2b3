/**
 * POST /v1/completions (OpenAI's legacy completions, as vLLM serves them) through the real app with the bundled tiny
 * model: a prompt or a list of prompts with n choices each, stop, logprobs as a count, streaming, and 400s naming
 * what is not supported (echo, suffix, best_of other than n, token-id prompts).
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

const OTHER = 'Tom has 4 pens. He buys 2 more. How many pens does Tom have now?';
const GREEDY = { temperature: 0, max_tokens: 64 };

async function complete(body: Record<string, unknown>) {
  const res = await api.post('/v1/completions', { model: MODEL, prompt: QUESTION, ...body });
  return { status: res.status, body: (await res.json()) as any };
}

describe('POST /v1/completions', () => {
  it('answers_each_prompt_of_a_list_with_n_choices_in_prompt_order_as_chat_would', async () => {
    const { status, body } = await complete({ ...GREEDY, prompt: [QUESTION, OTHER], n: 2, seed: 4 });
    expect(status).toBe(200);
    expect(body.object).toBe('text_completion');
    expect(body.seed).toBe(4);
    expect(body.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    for (const [i, prompt] of [QUESTION, OTHER].entries()) {
      const chat = (await (await api.post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: prompt }], ...GREEDY, n: 2, seed: 4 })).json()) as any;
      expect(body.choices.slice(2 * i, 2 * i + 2).map((c: any) => [c.text, c.reasoning_content, c.finish_reason])).toEqual(
        chat.choices.map((c: any) => [c.message.content, c.message.reasoning_content, c.finish_reason]),
      );
    }
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
  }, 60_000);

  it('cuts_the_text_at_a_stop_string', async () => {
    const { body } = await complete({ ...GREEDY, stop: '}' });
    expect(body.choices[0].text).toBe('\n\\boxed{10');
    expect(body.choices[0].finish_reason).toBe('stop');
  }, 60_000);

  it('reports_legacy_logprobs_with_the_chosen_token_among_the_top_ones', async () => {
    const { body } = await complete({ ...GREEDY, logprobs: 2 });
    const lp = body.choices[0].logprobs;
    expect(lp.tokens.join('')).toBe(body.choices[0].text);
    expect(lp.token_logprobs).toHaveLength(lp.tokens.length);
    lp.tokens.forEach((token: string, i: number) => {
      expect(lp.top_logprobs[i][token]).toBe(lp.token_logprobs[i]);
      expect(Object.keys(lp.top_logprobs[i]).length).toBeLessThanOrEqual(3);
      expect(lp.text_offset[i]).toBe(lp.tokens.slice(0, i).join('').length);
    });
    expect((await complete({ ...GREEDY })).body.choices[0].logprobs).toBeNull();
  }, 60_000);

  it('streams_text_completion_chunks_that_add_up_to_the_plain_answer', async () => {
    const request = { ...GREEDY, prompt: [QUESTION, OTHER], logprobs: 1 };
    const plain = await complete(request);
    const res = await api.post('/v1/completions', { model: MODEL, ...request, stream: true, stream_options: { include_usage: true } });
    const chunks = await sseChunks(res);
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    expect(chunks.at(-1).usage).toEqual(plain.body.usage);
    for (const choice of plain.body.choices) {
      const mine = chunks.flatMap((c) => c.choices).filter((c: any) => c.index === choice.index);
      expect(mine.map((c: any) => c.text).join('')).toBe(choice.text);
      expect(mine.map((c: any) => c.reasoning_content ?? '').join('')).toBe(choice.reasoning_content);
      expect(mine.flatMap((c: any) => c.logprobs?.tokens ?? [])).toEqual(choice.logprobs.tokens);
      expect(mine.flatMap((c: any) => c.logprobs?.text_offset ?? [])).toEqual(choice.logprobs.text_offset);
      expect(mine.at(-1).finish_reason).toBe(choice.finish_reason);
    }
  }, 60_000);

  it.each([
    [{ echo: true }, 'echo'],
    [{ suffix: 'x' }, 'suffix'],
    [{ best_of: 3 }, 'best_of'],
    [{ prompt: [1, 2, 3] }, 'prompt[0]'],
    [{ prompt: [] }, 'prompt'],
    [{ logprobs: 21 }, 'logprobs'],
    [{ presence_penalty: 1 }, 'presence_penalty'],
    [{ n: 40, prompt: [QUESTION, OTHER] }, 'n'],
    [{ prompt: [QUESTION, '7 + '.repeat(5000)] }, 'prompt[1]'],
    [{ temperature: 0, soft_thinking: { noise_scale: 1 } }, 'soft_thinking.noise_scale'],
  ])('%j is a 400 naming %s', async (override, param) => {
    const { status, body } = await complete(override);
    expect(status).toBe(400);
    expect(body.error.param).toBe(param);
  });

  it('accepts_echo_false_best_of_n_and_a_user', async () => {
    const { status } = await complete({ echo: false, best_of: 2, n: 2, user: 'u', max_tokens: 8 });
    expect(status).toBe(200);
  }, 60_000);
});
