/**
 * Model -> engine, runtime-neutral. Models named in the engine configuration are served by their configured engine
 * (onnx from a local folder, or remote), chosen per model; any other model whose files the API resolved (a fine-tuned
 * checkpoint, or a base model without configuration) is served from its blobs when a blob loader is given (the
 * Node model cache). Entry points compose it: src/engine/node-engines.ts on Node, remote engines only on Workers.
 */
import type { EngineRegistry, ReasoningEngine } from "./types";

export interface ModelFileRef {
  name: string;
  bytes: number;
  sha256: string;
  key: string; // blob key
}

/** What the API resolved a requested model name to (src/models/resolve.ts). */
export interface ModelRef {
  id: string; // the name the client sent
  base: string; // the base model id
  files?: ModelFileRef[]; // the model folder in the blob store
  key?: string; // what the model is, for caches that outlive a name (src/replicas/model-key.ts)
  contextLength?: number; // as the model's (or its base's) manifest states it, when it does
}

export interface RegistryParts {
  /** Loaders of the configured models; each is called once, on first use (a failed load is retried). */
  configured: Record<string, () => Promise<ReasoningEngine>>;
  /** Engine for a model folder in the blob store; absent: only configured models are served. */
  fromBlobs?: (ref: ModelRef & { files: ModelFileRef[] }) => Promise<ReasoningEngine>;
}

export class ConfiguredEngineRegistry implements EngineRegistry {
  private readonly loaded = new Map<string, Promise<ReasoningEngine>>();

  constructor(private readonly parts: RegistryParts) {}

  configuredIds(): string[] {
    return Object.keys(this.parts.configured);
  }

  async get(ref: ModelRef | string): Promise<ReasoningEngine | null> {
    const model: ModelRef = typeof ref === "string" ? { id: ref, base: ref } : ref;
    const load = this.parts.configured[model.id];
    if (load) {
      let engine = this.loaded.get(model.id);
      if (!engine) {
        engine = load();
        engine.catch(() => this.loaded.delete(model.id));
        this.loaded.set(model.id, engine);
      }
      return engine;
    }
    const files = model.files;
    if (this.parts.fromBlobs && files?.some((f) => f.name === "model.onnx")) return this.parts.fromBlobs({ ...model, files });
    return null;
  }
}
