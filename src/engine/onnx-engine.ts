/**
 * The in-process engine: a model folder's model.onnx in onnxruntime-node (CPU), batched soft-thinking and discrete
 * decoding with the key-value cache.
 *
 * generate() decodes in the engine's continuous batch (./batch-scheduler.ts): the samples of every request in flight
 * for this model share one forward per step, each sample exactly what it is alone, and waiting prompts are prefilled
 * together (./batch-prefill.ts, when its probe at load holds). Batching needs the session's
 * alignment quantum (./batch-alignment.ts), measured at load; an engine loaded with `batching: false`, or whose
 * session has no quantum, decodes each request alone instead (generateAlone).
 *
 * generateAlone() decodes the requested samples of one prompt as one batch of their own: the prompt is prefilled
 * once (B = 1), its cache tiled to the batch, and each step feeds every unfinished row one position (soft rows k
 * mixed tokens, discrete rows [tok] padded to k with weight 0). Rows leave the batch as they finish. All rows share
 * the prompt, so no padding is needed: the attention mask is all ones and every row sits at the same position.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { probeAlignment } from "./batch-alignment";
import { prefillTogetherHolds } from "./batch-prefill";
import { raiseMmapThreshold } from "./malloc-threshold";
import { BatchScheduler, type BatchStats } from "./batch-scheduler";
import { cacheFromOutputs, emptyCache, gatherRows, type KvCache } from "./kv-cache";
import { loadChatTokenizer, readModelGeometry, type ModelGeometry } from "./model-folder";
import { SampleDecoder, type ModelInput } from "./sample-decoder";
import { StreamEmitter } from "./stream-emitter";
import { ChatTokenizer } from "./tokenizer";
import {
  EngineInputError,
  type GenerationHooks,
  type GenerationRequest,
  type GenerationResult,
  type ModelDescription,
  type ReasoningEngine,
} from "./types";

export interface OnnxEngineOptions {
  modelId: string;
  intraOpThreads?: number; // onnxruntime intra-op threads (default 1: requests run side by side)
  batching?: boolean; // continuous batching across requests (default true); false: each request decodes alone
  maxBatchRows?: number; // the cap on rows (samples) in the batch (default DEFAULT_MAX_BATCH_ROWS)
  alignmentQuantum?: number; // skip the measurement at load and use this quantum (tests)
  prefillTogether?: boolean; // prefill waiting prompts together when the session's probe allows (default true)
}

export const DEFAULT_MAX_BATCH_ROWS = 32;

/**
 * Positions (prompts x the longest) one forward may prefill together: at most 4096, so a burst of arrivals stalls
 * the running batch for about one long prompt's prefill, and no more than 64 MiB of float32 logits ([B, T, V], every
 * position's) for the model's vocabulary. A prompt longer than that is still prefilled, alone.
 */
export function prefillTokenBudget(vocabSize: number): number {
  return Math.max(1, Math.min(4096, Math.floor((64 * 2 ** 20) / (4 * vocabSize))));
}

/** How an engine decodes: in a continuous batch (with its quantum and cap) or each request alone. */
export interface BatchingDescription {
  batching: boolean;
  quantum: number | null;
  maxRows: number;
}

interface ForwardOutput {
  logits: Float32Array; // [B, T, V]
  cache: KvCache;
}

export class OnnxEngine implements ReasoningEngine {
  private scheduler: BatchScheduler | null = null;
  private maxRows = DEFAULT_MAX_BATCH_ROWS;

  private constructor(
    private readonly modelId: string,
    readonly session: ort.InferenceSession,
    readonly tokenizer: ChatTokenizer,
    readonly geometry: ModelGeometry,
  ) {}

  static async load(folder: string, options: OnnxEngineOptions): Promise<OnnxEngine> {
    const maxRows = options.maxBatchRows ?? DEFAULT_MAX_BATCH_ROWS;
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxBatchRows must be a positive integer, got ${maxRows}`);
    // One after the other, so a folder missing several files always names config.json first.
    const geometry = await readModelGeometry(folder);
    const tokenizer = await loadChatTokenizer(folder);
    const session = await ort.InferenceSession.create(join(folder, "model.onnx"), {
      intraOpNumThreads: options.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
    });
    raiseMmapThreshold(); // batch caches reuse heap memory instead of being mapped afresh every step
    const engine = new OnnxEngine(options.modelId, session, tokenizer, geometry);
    engine.maxRows = maxRows;
    if (options.batching ?? true) {
      const quantum = options.alignmentQuantum ?? (await probeAlignment(engine));
      if (quantum !== null) {
        let maxPrefillBatch = 1;
        if (options.prefillTogether ?? true) {
          if (await prefillTogetherHolds(engine)) maxPrefillBatch = maxRows;
          else console.warn(`onnx engine ${options.modelId}: prompts prefilled together differ from alone on this session; each is prefilled alone`);
        }
        const maxPrefillTokens = prefillTokenBudget(geometry.vocabSize);
        engine.scheduler = new BatchScheduler(engine, tokenizer, { maxRows, quantum, maxPrefillBatch, maxPrefillTokens });
      } else console.warn(`onnx engine ${options.modelId}: no padding keeps this session's logits exact; requests decode alone`);
    }
    return engine;
  }

  describe(): ModelDescription {
    return { id: this.modelId, context_length: this.geometry.contextLength, engine: "onnx" };
  }

  describeBatching(): BatchingDescription {
    return { batching: this.scheduler !== null, quantum: this.scheduler?.options.quantum ?? null, maxRows: this.maxRows };
  }

  /** The continuous batch now (null when requests decode alone). */
  batchStats(): BatchStats | null {
    return this.scheduler?.stats() ?? null;
  }

  /** Releases the session once the batch has answered every request in it. */
  async release(): Promise<void> {
    await this.scheduler?.idle();
    await this.session.release();
  }

  /** One forward of B rows x T positions (k slots each) after a cache of length P; `mask` [B, P+T] (default ones). */
  async forward(
    ids: BigInt64Array,
    weights: Float32Array,
    dims: [number, number, number],
    cache: KvCache,
    positions: number[][],
    mask?: BigInt64Array,
  ): Promise<ForwardOutput> {
    const [batch, length] = dims;
    const past = Object.values(cache)[0]?.dims[2] as number;
    const total = past + length;
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor("int64", ids, dims),
      weights: new ort.Tensor("float32", weights, dims),
      attention_mask: new ort.Tensor("int64", mask ?? new BigInt64Array(batch * total).fill(1n), [batch, total]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat(), (p) => BigInt(p)), [batch, length]),
      ...cache,
    };
    const outputs = await this.session.run(feeds);
    return { logits: (outputs.logits as ort.Tensor).data as Float32Array, cache: cacheFromOutputs(outputs, this.geometry.numLayers) };
  }

  async preflight(request: GenerationRequest): Promise<void> {
    this.checkLengths(this.tokenizer.encodeChat(request.messages).length, request.max_tokens);
  }

  /** Decodes the request's samples in the continuous batch (or alone, without batching). */
  async generate(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    if (!this.scheduler) return this.generateAlone(request, hooks);
    const promptIds = this.tokenizer.encodeChat(request.messages);
    const maxTokens = this.checkLengths(promptIds.length, request.max_tokens);
    return this.scheduler.submit(request, promptIds, maxTokens, hooks);
  }

  /** Decodes the request's samples as a batch of their own, beside no other request (the unbatched engine). */
  async generateAlone(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const promptIds = this.tokenizer.encodeChat(request.messages);
    const maxTokens = this.checkLengths(promptIds.length, request.max_tokens);
    const { logits: prefillLogits, cache: prefillCache } = await this.prefill(promptIds);
    const vocab = this.geometry.vocabSize;
    const lastRow = prefillLogits.subarray((promptIds.length - 1) * vocab, promptIds.length * vocab);

    const special = { thinkEndId: this.tokenizer.thinkEndId, eosId: this.tokenizer.eosId };
    const decoders = request.samples.map((sample) => new SampleDecoder(sample, request, special, maxTokens, this.tokenizer));
    const stream = hooks.onEvent ? new StreamEmitter(decoders, this.tokenizer, hooks.onEvent) : null;
    const decode = (ids: number[]) => this.tokenizer.decode(ids);

    let active = decoders;
    let rowLogits = active.map(() => lastRow);
    let cache = gatherRows(prefillCache, active.map(() => 0));
    let position = promptIds.length;
    while (active.length > 0 && !hooks.signal?.aborted) {
      const inputs = active.map((d, r) => d.advance(rowLogits[r]));
      stream?.afterStep(active);
      const keep = active.flatMap((d, r) => (d.done ? [] : [r]));
      if (keep.length === 0) break;
      if (keep.length < active.length) cache = gatherRows(cache, keep);
      active = keep.map((r) => active[r]);
      const { ids, weights, k } = packInputs(keep.map((r) => inputs[r]));
      const out = await this.forward(ids, weights, [active.length, 1, k], cache, active.map(() => [position]));
      cache = out.cache;
      rowLogits = active.map((_, r) => out.logits.subarray(r * vocab, (r + 1) * vocab));
      position++;
    }
    return { prompt_tokens: promptIds.length, samples: decoders.map((d) => d.toResult(decode)) };
  }

  /** The generation budget after the prompt; a 4xx naming the field when the prompt or max_tokens does not fit. */
  private checkLengths(promptLength: number, maxTokens: number | null): number {
    const context = this.geometry.contextLength;
    if (promptLength >= context) {
      throw new EngineInputError("messages", `the prompt has ${promptLength} tokens; the context length of ${this.modelId} is ${context}`);
    }
    if (maxTokens !== null && promptLength + maxTokens > context) {
      throw new EngineInputError(
        "max_tokens",
        `prompt (${promptLength} tokens) + max_tokens (${maxTokens}) exceeds the context length ${context} of ${this.modelId}`,
      );
    }
    return maxTokens ?? context - promptLength;
  }

  private prefill(promptIds: number[]): Promise<ForwardOutput> {
    const ids = BigInt64Array.from(promptIds, (id) => BigInt(id));
    const weights = new Float32Array(promptIds.length).fill(1);
    const positions = [promptIds.map((_, i) => i)];
    return this.forward(ids, weights, [1, promptIds.length, 1], emptyCache(this.geometry, 1), positions);
  }
}

/** [B, 1, k] ids and weights, k the widest input; narrower inputs are padded with id 0, weight 0. */
function packInputs(inputs: ModelInput[]): { ids: BigInt64Array; weights: Float32Array; k: number } {
  const k = Math.max(...inputs.map((input) => input.ids.length));
  const ids = new BigInt64Array(inputs.length * k);
  const weights = new Float32Array(inputs.length * k);
  inputs.forEach((input, r) => {
    input.ids.forEach((id, i) => {
      ids[r * k + i] = BigInt(id);
      weights[r * k + i] = input.weights[i];
    });
  });
  return { ids, weights, k };
}
