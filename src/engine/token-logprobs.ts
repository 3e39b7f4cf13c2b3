/**
 * Log-probabilities of answer tokens (GenerationRequest.logprobs): log_softmax of the raw logits of the step (the
 * model's own distribution, before the sampling temperature and filters, so a greedy answer reports real numbers),
 * the chosen token's and the `top` most likely ones (ties: lower id). Token text and bytes come from the tokenizer
 * (`tokenBytes`: a byte-level BPE piece maps back to exact bytes, so a token holding half a character has bytes
 * and a lossy text, as OpenAI reports it).
 */
import { topIndices } from "./sampling";
import type { TokenCandidate, TokenLogprob } from "./types";

/** A recorded answer step, before ids become text. */
export interface StepLogprob {
  id: number;
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

export interface TokenText {
  decode(ids: number[]): string;
  tokenBytes(id: number): number[];
}

/** The chosen token's log p and the `top` most likely tokens' under softmax(logits), in float64. */
export function stepLogprob(logits: ArrayLike<number>, token: number, top: number): StepLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return {
    id: token,
    logprob: logits[token] - lse,
    top: topIndices(logits, top).map((id) => ({ id, logprob: logits[id] - lse })),
  };
}

const utf8 = new TextDecoder("utf-8");

function candidate(text: TokenText, id: number, logprob: number): TokenCandidate {
  const bytes = text.tokenBytes(id);
  return { token: utf8.decode(Uint8Array.from(bytes)), bytes, logprob };
}

export function tokenLogprob(text: TokenText, step: StepLogprob): TokenLogprob {
  return { ...candidate(text, step.id, step.logprob), top_logprobs: step.top.map((t) => candidate(text, t.id, t.logprob)) };
}
