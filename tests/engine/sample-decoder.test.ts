import { describe, expect, it } from 'vitest';
import { SampleDecoder } from '../../src/engine/sample-decoder';
import type { TokenText } from '../../src/engine/token-logprobs';
import type { GenerationRequest } from '../../src/engine/types';

const V = 8;
const THINK_END = 6;
const EOS = 7;
const special = { thinkEndId: THINK_END, eosId: EOS };

/** Logits favouring one token by a wide margin (a flat rest gives a controllable entropy). */
function favour(token: number, margin = 30): number[] {
  return Array.from({ length: V }, (_, i) => (i === token ? margin : 0));
}

function request(over: Partial<GenerationRequest> = {}, soft: Partial<GenerationRequest['soft_thinking']> = {}): GenerationRequest {
  return {
    messages: [],
    mode: 'soft',
    soft_thinking: { temperature: 1, top_k: 0, top_p: 1, min_p: 0, max_topk: 3, gumbel_tau: 0.1, noise_scale: 0, max_thinking_tokens: 100, cold_stop: null, ...soft },
    answer: { temperature: 0, top_k: 0, top_p: 1, min_p: 0 },
    max_tokens: 50,
    seed: 1,
    samples: [0],
    ...over,
  };
}

function run(decoder: SampleDecoder, script: number[][]) {
  const inputs = [];
  for (const logits of script) {
    if (decoder.done) break;
    inputs.push(decoder.advance(logits));
  }
  return inputs;
}

describe('SampleDecoder', () => {
  it('feeds soft mixtures while thinking, </think> and answers as discrete tokens, and stops at eos', () => {
    const d = new SampleDecoder(0, request(), special, 50);
    const inputs = run(d, [favour(1, 2), favour(2, 2), favour(THINK_END), favour(4), favour(EOS)]);
    expect(inputs[0].ids).toHaveLength(3); // soft: k candidates
    expect(inputs[0].ids[0]).toBe(1);
    expect(inputs[2]).toEqual({ ids: [THINK_END], weights: [1] });
    expect(inputs[3]).toEqual({ ids: [4], weights: [1] });
    expect(d.tokenIds).toEqual([1, 2, THINK_END, 4, EOS]);
    expect(d.finishReason).toBe('stop');
    expect(d.thinkingEnd).toBe('emitted');
    expect([d.reasoningTokens, d.answerTokens]).toEqual([3, 2]);
    expect(d.reasoningIds).toEqual([1, 2]);
    expect(d.answerIds).toEqual([4]);
  });

  it('forces </think> after max_thinking_tokens thinking steps', () => {
    const d = new SampleDecoder(0, request({}, { max_thinking_tokens: 2 }), special, 50);
    run(d, [favour(1), favour(1), favour(1), favour(5), favour(EOS)]);
    expect(d.tokenIds).toEqual([1, 1, THINK_END, 5, EOS]);
    expect(d.thinkingEnd).toBe('cap');
  });

  it('cold-stops thinking after `steps` consecutive low-entropy steps, and a high-entropy step resets the run', () => {
    const cold = { entropy: 0.01, steps: 2 };
    const d = new SampleDecoder(0, request({}, { cold_stop: cold }), special, 50);
    // favour(1, 30) has entropy ~1e-11 (cold); favour(1, 1) is spread out (warm)
    run(d, [favour(1), favour(1, 1), favour(1), favour(1), favour(5), favour(EOS)]);
    expect(d.tokenIds).toEqual([1, 1, 1, THINK_END, 5, EOS]);
    expect(d.thinkingEnd).toBe('cold_stop');
  });

  it('ends with finish_reason length after max_tokens, whatever the phase', () => {
    const d = new SampleDecoder(0, request(), special, 3);
    run(d, [favour(1), favour(1), favour(1), favour(1)]);
    expect(d.tokenIds).toEqual([1, 1, 1]);
    expect(d.finishReason).toBe('length');
    expect([d.reasoningTokens, d.answerTokens]).toEqual([3, 0]);
  });

  it('samples every step discretely in discrete mode and still splits reasoning from the answer', () => {
    const d = new SampleDecoder(0, request({ mode: 'discrete' }), special, 50);
    const inputs = run(d, [favour(1), favour(THINK_END), favour(3), favour(EOS)]);
    expect(inputs.every((input) => input.ids.length === 1)).toBe(true);
    expect(d.reasoningIds).toEqual([1]);
    expect(d.answerIds).toEqual([3]);
    expect(d.thinkingEnd).toBe('emitted');
  });

  it('an eos emitted while thinking ends the sample with every step counted as reasoning', () => {
    const d = new SampleDecoder(0, request(), special, 50);
    run(d, [favour(1), favour(EOS), favour(1)]);
    expect(d.tokenIds).toEqual([1, EOS]);
    expect([d.reasoningTokens, d.answerTokens, d.finishReason, d.thinkingEnd]).toEqual([2, 0, 'stop', null]);
  });

  // token i reads as LETTERS[i]; special tokens (think end, eos) read as nothing
  const LETTERS = ['a', 'b', 'c', '}', 'x', 'y', '', ''];
  const text: TokenText = {
    decode: (ids) => ids.map((id) => LETTERS[id]).join(''),
    tokenBytes: (id) => [...Buffer.from(LETTERS[id])],
  };

  it('ends at the answer token that completes a stop string, the answer cut before it; thinking is never cut', () => {
    const d = new SampleDecoder(0, request({ stop: ['}b', 'cc'] }), special, 50, text);
    const visible: string[] = [];
    const script = [favour(2), favour(2), favour(THINK_END), favour(0), favour(3), favour(1), favour(4)];
    for (const logits of script) {
      if (d.done) break;
      d.advance(logits);
      visible.push(d.visibleAnswer());
    }
    expect(d.reasoningIds).toEqual([2, 2]); // "cc" while thinking does not stop
    expect(visible).toEqual(['', '', '', 'a', 'a', 'a']); // "}" is held back until "}b" is complete
    expect(d.finishReason).toBe('stop');
    expect(d.answerTokens).toBe(3); // a } b: the token that completed the stop string counts, eos never came
    expect(d.toResult(text.decode).answer).toBe('a');
  });

  it('records the log-probability of each answer token and its top alternatives, eos excluded', () => {
    const d = new SampleDecoder(0, request({ logprobs: 2 }), special, 50, text);
    run(d, [favour(1), favour(THINK_END), favour(4, 2), favour(EOS)]);
    const logprobs = d.toResult(text.decode).logprobs!;
    expect(logprobs).toHaveLength(1);
    const p4 = Math.exp(2) / (Math.exp(2) + V - 1);
    expect(logprobs[0]).toMatchObject({ token: 'x', bytes: [120] });
    expect(logprobs[0].logprob).toBeCloseTo(Math.log(p4), 12);
    expect(logprobs[0].top_logprobs.map((c) => c.token)).toEqual(['x', 'a']); // ties to the lower id
    expect(logprobs[0].top_logprobs[1].logprob).toBeCloseTo(Math.log((1 - p4) / (V - 1)), 12);
  });
});
