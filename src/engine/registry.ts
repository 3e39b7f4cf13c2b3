/**
 * Model id -> engine, runtime-neutral. Base models come from configuration (each one onnx or remote, chosen per
 * model); fine-tuned checkpoints are served by a checkpoint loader (the blob-backed model cache on Node).
 * Entry points compose it: src/engine/node-engines.ts on Node, remote engines only on Workers.
 */
import type { EngineRegistry, ReasoningEngine } from "./types";

export interface CheckpointFileRef {
  name: string;
  bytes: number;
  sha256: string;
}

/** What the API resolved a requested model name to. */
export interface ModelRef {
  id: string; // the name the client sent
  base: string; // the base model id
  checkpoint?: { blobPrefix: string; files: CheckpointFileRef[] }; // set for fine-tuned models
}

export interface RegistryParts {
  /** Loaders of the configured base models; each is called once, on first use. */
  base: Record<string, () => Promise<ReasoningEngine>>;
  /** Engine for a fine-tuned checkpoint of a base model; absent: fine-tuned models are not served here. */
  checkpoint?: (ref: ModelRef & { checkpoint: NonNullable<ModelRef["checkpoint"]> }) => Promise<ReasoningEngine>;
}

export class ConfiguredEngineRegistry implements EngineRegistry {
  private readonly loaded = new Map<string, Promise<ReasoningEngine>>();

  constructor(private readonly parts: RegistryParts) {}

  /** Ids of the base models this registry can serve. */
  baseIds(): string[] {
    return Object.keys(this.parts.base);
  }

  serves(ref: ModelRef): boolean {
    return ref.checkpoint ? Boolean(this.parts.checkpoint) && ref.base in this.parts.base : ref.id in this.parts.base;
  }

  async get(ref: ModelRef | string): Promise<ReasoningEngine | null> {
    const model = typeof ref === "string" ? { id: ref, base: ref } : ref;
    if (!this.serves(model)) return null;
    if (model.checkpoint && this.parts.checkpoint) return this.parts.checkpoint({ ...model, checkpoint: model.checkpoint });
    let engine = this.loaded.get(model.id);
    if (!engine) {
      engine = this.parts.base[model.id]();
      engine.catch(() => this.loaded.delete(model.id)); // a failed load is retried by the next request
      this.loaded.set(model.id, engine);
    }
    return engine;
  }
}
