/**
 * The engine port: what /v1/reason and /v1/chat/completions need from an inference engine, whether it runs in this
 * process (onnxruntime-node) or in a gpu-worker `serve` process (HTTP). The JSON shapes of GenerationRequest and
 * GenerationResult are also the wire format of the remote engine (gpu-worker/src/softgrpo/serve.py).
 */

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Filtering settings shared by both phases (docs/CONTRACTS.md "Sampling"). */
export interface SamplingSettings {
  temperature: number; // answer phase: 0 = greedy
  top_k: number; // 0 = off
  top_p: number; // 1 = off
  min_p: number; // 0 = off
}

export interface ColdStop {
  entropy: number; // stop thinking when the entropy of p stays below this ...
  steps: number; // ... for this many consecutive thinking steps
}

export interface SoftThinkingSettings extends SamplingSettings {
  max_topk: number; // k mixed tokens
  gumbel_tau: number;
  noise_scale: number; // 0 = plain Soft Thinking (deterministic)
  max_thinking_tokens: number; // cap: </think> is forced after this many thinking steps
  cold_stop: ColdStop | null;
}

export type DecodeMode = "soft" | "discrete";

export interface GenerationRequest {
  messages: ChatMessage[];
  mode: DecodeMode; // discrete: every step is an answer-phase (discrete) step
  soft_thinking: SoftThinkingSettings; // thinking phase of soft mode
  answer: SamplingSettings; // answer phase; every step in discrete mode
  max_tokens: number | null; // generated tokens per sample, thinking and answer together; null: the rest of the context
  seed: number; // integer in [0, 2^53)
  samples: number[]; // Philox sample indices to generate (0..n-1, or a wave of them)
  // Answer phase only: a sample ends ("stop") at the first answer token whose text completes one of these; the answer
  // text is cut before it. Absent or []: off. Thinking is never cut (its soft steps are not the final text).
  stop?: string[];
  // Answer tokens only: the log-probability of each answer token under the model (log_softmax of its raw logits,
  // before temperature and filters) and of the `logprobs` most likely alternatives. Absent or null: off.
  logprobs?: number | null;
  // Soft mode only: record, for each soft thinking step fed to the model, its k token ids and mixture weights
  // (GeneratedSample.soft_thoughts). Absent or false: off.
  soft_thoughts?: boolean;
}

/** One soft thinking step: the k tokens mixed into the model's next input and their weights (summing to 1). */
export interface SoftThought {
  ids: number[];
  tokens: string[]; // each id decoded alone (lossy for a token holding part of a character)
  weights: number[];
}

/** One candidate token of an answer step: its text (UTF-8, lossy for a partial character), its bytes, log p. */
export interface TokenCandidate {
  token: string;
  bytes: number[];
  logprob: number;
}

/** An answer token with its log-probability and the most likely alternatives (OpenAI's chat logprobs entry). */
export interface TokenLogprob extends TokenCandidate {
  top_logprobs: TokenCandidate[];
}

export type FinishReason = "stop" | "length" | "cancelled";
export type ThinkingEnd = "emitted" | "cap" | "cold_stop" | null; // how the thinking phase ended

export interface GeneratedSample {
  sample: number;
  reasoning: string; // text of the emitted thinking tokens
  answer: string; // text of the answer tokens
  token_ids: number[]; // every emitted token, </think> and eos included
  reasoning_tokens: number; // thinking steps, the closing </think> included
  answer_tokens: number; // answer steps, eos included
  finish_reason: FinishReason;
  thinking_end: ThinkingEnd;
  logprobs?: TokenLogprob[]; // when requested: one entry per answer token, eos excluded
  soft_thoughts?: SoftThought[]; // when requested: one entry per emitted thinking token of a soft step
}

export interface GenerationResult {
  prompt_tokens: number;
  samples: GeneratedSample[]; // in the order of request.samples
}

/**
 * Incremental output for streaming: text deltas of one sample and the sample's completion. An answer delta carries
 * the logprobs of the answer tokens that arrived since the previous one (when requested); a delta may then have
 * empty text (a token whose character is not complete yet).
 */
export type GenerationEvent =
  | { type: "delta"; sample: number; phase: "reasoning" | "answer"; text: string; logprobs?: TokenLogprob[] }
  | { type: "sample_done"; sample: GeneratedSample };

export interface GenerationHooks {
  onEvent?: (event: GenerationEvent) => void;
  signal?: AbortSignal; // aborting stops decoding; unfinished samples end with finish_reason "cancelled"
  tenant?: string; // who asks: the ONNX engine's batch shares its rows fairly across tenants (absent: one anonymous)
}

export interface ModelDescription {
  id: string;
  context_length: number;
  engine: "onnx" | "remote";
}

export interface ReasoningEngine {
  describe(): ModelDescription;
  /** Cheap checks of a request before any sampling (prompt length); throws EngineInputError. Optional. */
  preflight?(request: GenerationRequest): Promise<void>;
  generate(request: GenerationRequest, hooks?: GenerationHooks): Promise<GenerationResult>;
}

/** Model -> engine; null for a model this deployment cannot serve (ModelRef: see ./registry). */
export interface EngineRegistry {
  get(model: import("./registry").ModelRef | string): Promise<ReasoningEngine | null>;
}

/** Bad request content that only the engine can detect (e.g. a prompt over the context length): a 4xx naming `param`. */
export class EngineInputError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = "EngineInputError";
  }
}
