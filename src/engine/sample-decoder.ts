/**
 * The per-sample decoding state machine of SOFT_GRPO.md section 1 (docs/CONTRACTS.md "Sampling"): given the logits
 * of the current position it picks the emitted token and the next model input, and tracks the phases
 * thinking -> answer -> done. Engine-independent: the ONNX engine batches many of these around one session.
 *
 * - Soft mode, thinking: a soft step (k mixed tokens). Thinking ends when the emitted token is </think>, when the
 *   thinking-step cap forces </think>, or when cold stop fires (entropy below a threshold for L consecutive steps);
 *   the </think> that ends thinking is fed as a discrete token.
 * - Answer phase, and every step of discrete mode: discrete sampling with the answer settings.
 * - Done at the eos token, after max_tokens generated tokens, or ("stop") at the first answer token whose text
 *   completes a stop string (request.stop; the answer text is cut before it). Stop strings never end thinking.
 * With request.logprobs, every answer token (eos excluded) records its log p and the top alternatives; with
 * request.soft_thoughts, every soft thinking step fed to the model records its k token ids and mixture weights.
 */
import { discreteStep, softTokenStep } from "./sampling";
import { StopStrings } from "./stop-strings";
import { stepLogprob, tokenLogprob, type StepLogprob, type TokenText } from "./token-logprobs";
import type { FinishReason, GeneratedSample, GenerationRequest, SoftThought, ThinkingEnd, TokenLogprob } from "./types";

export interface SpecialTokens {
  thinkEndId: number;
  eosId: number;
}

export interface ModelInput {
  ids: number[]; // k slots (a discrete token is [tok])
  weights: number[];
}

export type Phase = "thinking" | "answer" | "done";

export class SampleDecoder {
  phase: Phase = "thinking";
  finishReason: FinishReason | null = null;
  thinkingEnd: ThinkingEnd = null;
  readonly reasoningIds: number[] = []; // emitted thinking tokens, the closing </think> excluded
  readonly answerIds: number[] = []; // answer tokens, eos excluded
  readonly tokenIds: number[] = []; // everything emitted
  readonly answerLogprobs: StepLogprob[] = []; // with request.logprobs: one per answer token
  readonly softThoughts: ModelInput[] = []; // with request.soft_thoughts: one per emitted thinking token (soft mode)
  private step = 0;
  private thinkingSteps = 0;
  private lowEntropyRun = 0;
  private readonly stops: StopStrings | null;
  private cutAnswer: string | null = null; // the answer text before the stop string that ended the sample

  /** `text` is needed for stop strings and logprobs (the engine's tokenizer). */
  constructor(
    readonly sample: number,
    private readonly request: GenerationRequest,
    private readonly special: SpecialTokens,
    private readonly maxTokens: number,
    private readonly text?: TokenText,
  ) {
    const stop = request.stop ?? [];
    if ((stop.length > 0 || request.logprobs != null || request.soft_thoughts) && !text) {
      throw new Error("stop strings, logprobs and soft thoughts need the tokenizer");
    }
    this.stops = stop.length > 0 ? new StopStrings(stop) : null;
  }

  get done(): boolean {
    return this.phase === "done";
  }

  /** Consume the logits [V] of the current position; returns the next input (meaningless once done). */
  advance(logits: ArrayLike<number>): ModelInput {
    if (this.done) throw new Error(`sample ${this.sample} is already done`);
    const at = { seed: this.request.seed, sample: this.sample, step: this.step };
    const input = this.phase === "thinking" && this.request.mode === "soft" ? this.softThinkingStep(logits, at) : this.discreteStep(logits, at);
    this.step++;
    if (!this.done && this.step >= this.maxTokens) this.finish("length");
    return input;
  }

  private softThinkingStep(logits: ArrayLike<number>, at: { seed: number; sample: number; step: number }): ModelInput {
    const settings = this.request.soft_thinking;
    if (this.thinkingSteps >= settings.max_thinking_tokens) return this.endThinking("cap");
    const soft = softTokenStep(logits, settings, at);
    const cold = settings.cold_stop;
    if (cold) {
      this.lowEntropyRun = soft.entropy < cold.entropy ? this.lowEntropyRun + 1 : 0;
      if (this.lowEntropyRun >= cold.steps) return this.endThinking("cold_stop");
    }
    if (soft.emitted === this.special.thinkEndId) return this.endThinking("emitted");
    if (soft.emitted === this.special.eosId) return this.emitEos();
    this.thinkingSteps++;
    this.reasoningIds.push(soft.emitted);
    this.tokenIds.push(soft.emitted);
    if (this.request.soft_thoughts) this.softThoughts.push({ ids: soft.ids, weights: soft.weights });
    return { ids: soft.ids, weights: soft.weights };
  }

  private discreteStep(logits: ArrayLike<number>, at: { seed: number; sample: number; step: number }): ModelInput {
    if (this.phase === "thinking" && this.thinkingSteps >= this.request.soft_thinking.max_thinking_tokens) {
      return this.endThinking("cap");
    }
    const token = discreteStep(logits, this.request.answer, at);
    if (token === this.special.eosId) return this.emitEos();
    if (this.phase === "thinking") {
      if (token === this.special.thinkEndId) return this.endThinking("emitted");
      this.thinkingSteps++;
      this.reasoningIds.push(token);
    } else {
      this.answerIds.push(token);
      if (this.request.logprobs != null) this.answerLogprobs.push(stepLogprob(logits, token, this.request.logprobs));
    }
    this.tokenIds.push(token);
    if (this.phase === "answer" && this.stops) this.cutAtStop(this.stops);
    return { ids: [token], weights: [1] };
  }

  private cutAtStop(stops: StopStrings): void {
    const text = this.text!.decode(this.answerIds);
    const at = stops.cutIndex(text);
    if (at < 0) return;
    this.cutAnswer = text.slice(0, at);
    this.finish("stop");
  }

  /**
   * The answer text a stream may show now: all of it once done (cut at the stop string), else all but a tail that
   * could still become a stop string.
   */
  visibleAnswer(): string {
    if (this.cutAnswer !== null) return this.cutAnswer;
    const text = this.text ? this.text.decode(this.answerIds) : "";
    return this.done || !this.stops ? text : text.slice(0, this.stops.releasable(text));
  }

  /** The recorded soft thinking steps, each token id with its text (one token decoded alone). */
  softThoughtsWithText(): SoftThought[] {
    return this.softThoughts.map((s) => ({ ids: s.ids, tokens: s.ids.map((id) => this.text!.decode([id])), weights: s.weights }));
  }

  /** The recorded answer logprobs from index `from` on, as tokens with text and bytes. */
  logprobsFrom(from: number): TokenLogprob[] {
    return this.answerLogprobs.slice(from).map((step) => tokenLogprob(this.text!, step));
  }

  private endThinking(how: Exclude<ThinkingEnd, null>): ModelInput {
    this.phase = "answer";
    this.thinkingEnd = how;
    this.tokenIds.push(this.special.thinkEndId);
    return { ids: [this.special.thinkEndId], weights: [1] };
  }

  private emitEos(): ModelInput {
    this.tokenIds.push(this.special.eosId);
    this.finish("stop");
    return { ids: [this.special.eosId], weights: [1] };
  }

  finish(reason: FinishReason): void {
    this.phase = "done";
    this.finishReason = reason;
  }

  /** Thinking steps including the closing </think>; answer steps including eos. */
  get reasoningTokens(): number {
    return this.thinkingEnd === null ? this.tokenIds.length : this.reasoningIds.length + 1;
  }

  get answerTokens(): number {
    return this.tokenIds.length - this.reasoningTokens;
  }

  toResult(decode: (ids: number[]) => string): GeneratedSample {
    return {
      sample: this.sample,
      reasoning: decode(this.reasoningIds),
      answer: this.cutAnswer ?? decode(this.answerIds),
      token_ids: [...this.tokenIds],
      reasoning_tokens: this.reasoningTokens,
      answer_tokens: this.answerTokens,
      finish_reason: this.finishReason ?? "cancelled",
      thinking_end: this.thinkingEnd,
      ...(this.request.logprobs != null ? { logprobs: this.logprobsFrom(0) } : {}),
      ...(this.request.soft_thoughts ? { soft_thoughts: this.softThoughtsWithText() } : {}),
    };
  }
}
