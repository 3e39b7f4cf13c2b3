/**
 * The engine registry of the Node entry: each base model is served by onnxruntime-node from a local model folder or
 * by a remote gpu-worker `serve` process, as configured per model; other models (fine-tuned checkpoints, base models
 * without configuration) are fetched from the blob store into a local cache and served by onnxruntime-node.
 *
 * Configuration (env ENGINE_MODELS, JSON), e.g.
 *   {"tiny-arith": {"engine": "onnx", "folder": "models/tiny"},
 *    "qwen-7b":    {"engine": "remote", "url": "http://gpu-host:8100", "context_length": 32768}}
 * An onnx model may set "threads" (onnxruntime intra-op threads per session, default 1), "pool_size" (engine
 * threads serving it, default min(2, cores)), "max_batch_rows" (the cap on samples decoding together in one thread's
 * continuous batch, default 32), "batching": false (each request decodes alone, as before continuous batching) and
 * "prefill_thread" (each engine thread prefills its prompts in a thread of its own, overlapping its decode steps;
 * default: when pool_size is below the machine's cores).
 *
 * onnxruntime-node engines run in worker threads (./threaded-engine.ts), off the event loop, for both configured
 * models and checkpoints of the cache. Pool size 0 runs OnnxEngine on the API thread instead, where every decode
 * step blocks the event loop: it exists to measure that difference (bench/event-loop.ts), not to serve tenants.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { ModelFolderCache, type BlobReader, type LoadedEngine } from "./model-cache";
import { OnnxEngine } from "./onnx-engine";
import { ConfiguredEngineRegistry } from "./registry";
import { RemoteEngine } from "./remote-engine";
import { ThreadedEngine } from "./threaded-engine";
import type { ReasoningEngine } from "./types";

export const EngineModelConfig = z.discriminatedUnion("engine", [
  z.object({
    engine: z.literal("onnx"),
    folder: z.string().min(1),
    threads: z.number().int().min(1).optional(),
    pool_size: z.number().int().min(0).optional(),
    max_batch_rows: z.number().int().min(1).optional(),
    batching: z.boolean().optional(),
    prefill_thread: z.boolean().optional(),
  }),
  z.object({
    engine: z.literal("remote"),
    url: z.string().url(),
    context_length: z.number().int().min(1),
    token: z.string().optional(),
  }),
]);
export type EngineModelConfig = z.infer<typeof EngineModelConfig>;
export const EngineModelsConfig = z.record(z.string().min(1), EngineModelConfig);

/** Parses ENGINE_MODELS; a readable error names the offending model. */
export function parseEngineModels(json: string): Record<string, EngineModelConfig> {
  const parsed = EngineModelsConfig.safeParse(JSON.parse(json));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`ENGINE_MODELS: ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

interface OnnxLoadOptions {
  modelId: string;
  intraOpThreads?: number;
  poolSize?: number;
  batching?: boolean;
  maxBatchRows?: number;
  prefillThread?: boolean;
}

/** An onnxruntime-node engine for a model folder: in `poolSize` worker threads, or on this thread for 0. */
function loadOnnx(folder: string, options: OnnxLoadOptions): Promise<LoadedEngine> {
  const { poolSize, ...session } = options;
  return poolSize === 0 ? OnnxEngine.load(folder, session) : ThreadedEngine.load(folder, options);
}

export interface NodeEngineOptions {
  models: Record<string, EngineModelConfig>;
  poolSize?: number; // engine threads per model (default min(2, cores); 0: on the API thread); pool_size wins
  blobs?: BlobReader; // models not in `models` (fine-tuned checkpoints) are served from blobs only when given
  cacheDir?: string;
  maxLoadedCheckpoints?: number;
  maxLoadedCheckpointBytes?: number;
}

export function createNodeEngineRegistry(options: NodeEngineOptions): ConfiguredEngineRegistry {
  const base: Record<string, () => Promise<ReasoningEngine>> = {};
  for (const [id, model] of Object.entries(options.models)) {
    base[id] =
      model.engine === "onnx"
        ? () =>
            loadOnnx(model.folder, {
              modelId: id,
              intraOpThreads: model.threads,
              poolSize: model.pool_size ?? options.poolSize,
              batching: model.batching,
              maxBatchRows: model.max_batch_rows,
              prefillThread: model.prefill_thread,
            })
        : async () => new RemoteEngine({ modelId: id, url: model.url, contextLength: model.context_length, token: model.token });
  }
  const cache = options.blobs
    ? new ModelFolderCache({
        blobs: options.blobs,
        dir: options.cacheDir ?? join(tmpdir(), "soft-reasoning-model-cache"),
        maxLoaded: options.maxLoadedCheckpoints ?? 4,
        maxLoadedBytes: options.maxLoadedCheckpointBytes ?? 2 * 1024 ** 3,
        // an evicted checkpoint's engine is released, which ends its threads
        load: (folder, modelId) => loadOnnx(folder, { modelId, poolSize: options.poolSize }),
      })
    : null;
  return new ConfiguredEngineRegistry({ configured: base, fromBlobs: cache ? (ref) => cache.engine(ref) : undefined });
}
