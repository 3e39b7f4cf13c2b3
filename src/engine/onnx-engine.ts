/**
 * The in-process engine: a model folder's model.onnx in onnxruntime-node (CPU), batched soft-thinking and discrete
 * decoding with the key-value cache.
 *
 * generate() decodes in the engine's continuous batch (./batch-scheduler.ts): the samples of every request in flight
 * for this model share one forward per step, each sample exactly what it is alone, and waiting prompts are prefilled
 * together (./batch-prefill.ts, when its probe at load holds). Batching needs the session's
 * capacity quantum (./capacity-quantum.ts), measured at load; an engine loaded with `batching: false`, or whose
 * session has no quantum, decodes each request alone instead (generateAlone).
 *
 * The engine keeps the key-value cache itself (./cache-buffer.ts): a version-2 graph returns only each step's new
 * keys and values, so nothing of cache size is copied out of onnxruntime; a version-1 graph (model.onnx written
 * before) returns the whole cache, of which the engine keeps the new columns (./kv-cache.ts).
 *
 * generateAlone() decodes the requested samples of one prompt as one batch of their own: the prompt is prefilled
 * once (B = 1), its keys copied to each row, and each step feeds every unfinished row one position (soft rows k
 * mixed tokens, discrete rows [tok] padded to k with weight 0). Rows leave the batch as they finish. Its cache has the
 * capacity the continuous batch would give a row of its length (the quantum's rule), so its samples are the same.
 */
import type { MessagePort } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import { prefillTogether, prefillTogetherHolds } from "./batch-prefill";
import { BatchScheduler, type BatchStats } from "./batch-scheduler";
import { CacheBuffer } from "./cache-buffer";
import { probeCapacityQuantum, type MaskedForward } from "./capacity-quantum";
import { decodeStep } from "./decode-step";
import type { GraphVersion } from "./kv-cache";
import { loadChatTokenizer, readModelGeometry, type ModelGeometry } from "./model-folder";
import { OnnxForward } from "./onnx-forward";
import { startPrefillThread } from "./prefill-thread-start";
import { InlinePrefiller, type Prefiller } from "./prefiller";
import { SampleDecoder } from "./sample-decoder";
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
  capacityQuantum?: number; // skip the measurement at load and use this quantum (tests; without batching: the layout of generateAlone)
  prefillTogether?: boolean; // prefill waiting prompts together when the session's probe allows (default true)
  /**
   * Prefill the batch's prompts in a thread of their own, on a second session of the model, while the batch decodes
   * (./prefiller.ts; default false: between decode steps, on this session). Worth it when a core is free for it; the
   * model's weights are then in memory twice.
   */
  prefillThread?: boolean;
  /** The engine's end of a prefill thread's channel, started elsewhere (ThreadedEngine); implies prefillThread. */
  prefillPort?: MessagePort;
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
  prefiller: Prefiller["where"] | null; // where the batch's prompts are prefilled (./prefiller.ts)
}

export class OnnxEngine implements ReasoningEngine {
  private scheduler: BatchScheduler | null = null;
  private maxRows = DEFAULT_MAX_BATCH_ROWS;
  private quantum = 1; // the capacity quantum generateAlone lays its cache out with (1 until measured)

  private constructor(
    private readonly modelId: string,
    private readonly model: OnnxForward,
    readonly tokenizer: ChatTokenizer,
  ) {}

  get session(): ort.InferenceSession {
    return this.model.session;
  }

  get geometry(): ModelGeometry {
    return this.model.geometry;
  }

  get graphVersion(): GraphVersion {
    return this.model.graphVersion;
  }

  static async load(folder: string, options: OnnxEngineOptions): Promise<OnnxEngine> {
    const maxRows = options.maxBatchRows ?? DEFAULT_MAX_BATCH_ROWS;
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxBatchRows must be a positive integer, got ${maxRows}`);
    // One after the other, so a folder missing several files always names config.json first.
    const geometry = await readModelGeometry(folder);
    const tokenizer = await loadChatTokenizer(folder);
    const model = await OnnxForward.open(folder, geometry, options.intraOpThreads);
    const version = model.graphVersion;
    const engine = new OnnxEngine(options.modelId, model, tokenizer);
    engine.maxRows = maxRows;
    engine.quantum = options.capacityQuantum ?? 1;
    if ((options.batching ?? true) && version === 1) {
      console.warn(`onnx engine ${options.modelId}: model.onnx is a version-1 graph (present.* outputs), whose rows are not exact at every cache capacity; requests decode alone (export it again for batching)`);
    } else if (options.batching ?? true) {
      const quantum = options.capacityQuantum ?? (await probeCapacityQuantum(engine));
      if (quantum !== null) {
        engine.quantum = quantum;
        let maxPrefillBatch = 1;
        if (options.prefillTogether ?? true) {
          if (await prefillTogetherHolds(engine)) maxPrefillBatch = maxRows;
          else console.warn(`onnx engine ${options.modelId}: prompts prefilled together differ from alone on this session; each is prefilled alone`);
        }
        const maxPrefillTokens = prefillTokenBudget(geometry.vocabSize);
        const inline = new InlinePrefiller(engine);
        const threaded = options.prefillThread || options.prefillPort;
        const prefiller = threaded ? await startPrefillThread(folder, options, inline, geometry.vocabSize) : inline;
        engine.scheduler = new BatchScheduler(engine, tokenizer, { maxRows, quantum, maxPrefillBatch, maxPrefillTokens }, prefiller);
      } else console.warn(`onnx engine ${options.modelId}: no cache capacity keeps this session's logits exact; requests decode alone`);
    }
    // a prefill thread handed to an engine that decodes each request alone has nothing to do: it ends once its port closes
    if (!engine.scheduler) options.prefillPort?.close();
    return engine;
  }

  describe(): ModelDescription {
    return { id: this.modelId, context_length: this.geometry.contextLength, engine: "onnx" };
  }

  describeBatching(): BatchingDescription {
    const scheduler = this.scheduler;
    return { batching: scheduler !== null, quantum: scheduler?.options.quantum ?? null, maxRows: this.maxRows, prefiller: scheduler?.prefiller.where ?? null };
  }

  /** The continuous batch now (null when requests decode alone). */
  batchStats(): BatchStats | null {
    return this.scheduler?.stats() ?? null;
  }

  /** Releases the session once the batch has answered every request in it. */
  async release(): Promise<void> {
    await this.scheduler?.idle();
    await this.scheduler?.close();
    await this.model.release();
  }

  /** One forward of the engine's session (OnnxForward.forward); the probes and the batch call it here. */
  forward: MaskedForward["forward"] = (...args) => this.model.forward(...args);

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
    const [prefill] = await prefillTogether(this, [promptIds]);

    const special = { thinkEndId: this.tokenizer.thinkEndId, eosId: this.tokenizer.eosId };
    const decoders = request.samples.map((sample) => new SampleDecoder(sample, request, special, maxTokens, this.tokenizer));
    const stream = hooks.onEvent ? new StreamEmitter(decoders, this.tokenizer, hooks.onEvent) : null;
    const decode = (ids: number[]) => this.tokenizer.decode(ids);

    const vocab = this.geometry.vocabSize;
    const cache = new CacheBuffer(this.geometry, { quantum: this.quantum });
    const active = [...decoders]; // active[r] decodes in row r of the cache
    for (const _ of active) cache.addRow(prefill.cache, 0, promptIds.length);
    let rowLogits = active.map(() => prefill.logits);
    while (active.length > 0 && !hooks.signal?.aborted) {
      const inputs = active.map((d, r) => d.advance(rowLogits[r]));
      stream?.afterStep(active);
      for (let r = active.length - 1; r >= 0; r--) {
        if (!active[r].done) continue;
        const moved = cache.removeRow(r); // the last row takes row r
        if (moved >= 0) [active[r], inputs[r]] = [active[moved], inputs[moved]];
        active.pop();
        inputs.pop();
      }
      if (active.length === 0) break;
      cache.trim();
      const logits = await decodeStep(this, cache, inputs);
      rowLogits = active.map((_, r) => logits.subarray(r * vocab, (r + 1) * vocab));
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
}
