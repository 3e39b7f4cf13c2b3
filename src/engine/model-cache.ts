/**
 * Model folders in the blob store (fine-tuned checkpoints, base models without engine configuration), fetched into
 * a local cache directory and loaded as ONNX engines, with a bound on loaded sessions: at most `maxLoaded` engines
 * and `maxLoadedBytes` of ONNX weights (the served graph and its external data);
 * the least recently used engine is released (once its in-flight requests finish) when a new one exceeds either.
 *
 * A folder with an int8 variant (model.int8.onnx, written by `npm run import-model -- --int8`) is served in int8:
 * the variant is fetched under the name model.onnx (its external data keeps the name the graph refers to,
 * model.int8.onnx.data), and the float32 export stays in the blob store.
 *
 * Each file is verified against the SHA-256 the checkpoint registered, written to a temporary name and renamed,
 * so a crash never leaves a half-written file that a later request would trust.
 */
import { createHash } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import type { ModelFileRef, ModelRef } from "./registry";
import type { GenerationHooks, GenerationRequest, ReasoningEngine } from "./types";

/** The part of the app's BlobStore port this cache needs. */
export interface BlobReader {
  get(key: string): Promise<{ body: ReadableStream<Uint8Array>; size: number } | null>;
}

export interface LoadedEngine extends ReasoningEngine {
  release(): Promise<void>;
}

export interface ModelCacheOptions {
  blobs: BlobReader;
  dir: string;
  maxLoaded: number;
  maxLoadedBytes: number;
  load: (folder: string, modelId: string) => Promise<LoadedEngine>;
}

/** The files the ONNX engine reads; training state and safetensors stay in the blob store. */
export const SERVING_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.onnx"];
/** Fetched when the checkpoint has them: the manifest (context length) and the external weights of big exports. */
export const OPTIONAL_SERVING_FILES = ["manifest.json", "model.onnx.data"];

/** The ONNX graph served from a folder with these files and the weight files it reads: the int8 variant where
 * present, else the float32 model.onnx; each with its external data when the folder has it. */
export function servedOnnxFiles(names: Iterable<string>): { graph: string; files: string[] } {
  const present = new Set(names);
  const graph = present.has("model.int8.onnx") ? "model.int8.onnx" : "model.onnx";
  return { graph, files: [graph, `${graph}.data`].filter((name) => present.has(name)) };
}

interface Entry {
  engine: Promise<LoadedEngine>;
  bytes: number;
  inFlight: number;
  evicted: boolean;
  lastUsed: number;
}

export class ModelFolderCache {
  private readonly entries = new Map<string, Entry>();
  private useCounter = 0;

  constructor(private readonly options: ModelCacheOptions) {}

  /** Loaded engines, for tests and metrics. */
  loadedIds(): string[] {
    return [...this.entries.keys()];
  }

  async engine(ref: ModelRef & { files: ModelFileRef[] }): Promise<ReasoningEngine> {
    let entry = this.entries.get(ref.id);
    if (!entry) {
      const served = servedOnnxFiles(ref.files.map((f) => f.name)).files;
      const weights = ref.files.filter((f) => served.includes(f.name));
      const bytes = weights.reduce((sum, f) => sum + f.bytes, 0);
      entry = { engine: this.fetchAndLoad(ref), bytes, inFlight: 0, evicted: false, lastUsed: 0 };
      this.entries.set(ref.id, entry);
      entry.engine.catch(() => this.entries.get(ref.id) === entry && this.entries.delete(ref.id));
      this.evictBeyondBounds(ref.id);
    }
    entry.lastUsed = ++this.useCounter;
    const engine = await entry.engine;
    const held = entry;
    return {
      describe: () => engine.describe(),
      preflight: engine.preflight ? (request: GenerationRequest) => engine.preflight!(request) : undefined,
      generate: async (request: GenerationRequest, hooks?: GenerationHooks) => {
        held.inFlight++;
        try {
          return await engine.generate(request, hooks);
        } finally {
          held.inFlight--;
          if (held.evicted && held.inFlight === 0) await engine.release();
        }
      },
    };
  }

  private evictBeyondBounds(keep: string): void {
    const over = () => {
      const all = [...this.entries.values()];
      return all.length > this.options.maxLoaded || all.reduce((s, e) => s + e.bytes, 0) > this.options.maxLoadedBytes;
    };
    while (over()) {
      const victims = [...this.entries].filter(([id]) => id !== keep).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      if (victims.length === 0) return;
      const [id, entry] = victims[0];
      this.entries.delete(id);
      entry.evicted = true;
      entry.engine.then((e) => (entry.inFlight === 0 ? e.release() : undefined)).catch(() => undefined);
    }
  }

  private async fetchAndLoad(ref: ModelRef & { files: ModelFileRef[] }): Promise<LoadedEngine> {
    // one folder per content: the same files under another name share it, changed files get a new one
    const content = ref.files.map((f) => `${f.name}:${f.sha256}`).sort().join("\n");
    const folder = join(this.options.dir, createHash("sha256").update(content).digest("hex").slice(0, 32));
    await mkdir(folder, { recursive: true });
    const served = servedOnnxFiles(ref.files.map((f) => f.name));
    // the int8 graph is stored as model.onnx; its external data keeps its own name (the graph refers to it)
    const local = (name: string) => (name === served.graph ? "model.onnx" : name);
    const wanted = served.graph === "model.onnx" ? [...SERVING_FILES, ...OPTIONAL_SERVING_FILES] : [...SERVING_FILES.filter((n) => n !== "model.onnx"), "manifest.json", ...served.files];
    for (const name of wanted) {
      const file = ref.files.find((f) => f.name === name);
      if (!file && SERVING_FILES.includes(name)) throw new Error(`model ${ref.id} lacks ${name}`);
      if (file) await this.fetchFile(file, join(folder, local(name)));
    }
    return this.options.load(folder, ref.id);
  }

  private async fetchFile(file: ModelFileRef, path: string): Promise<void> {
    const existing = await stat(path).catch(() => null);
    if (existing?.size === file.bytes) return; // only a verified download is renamed into place
    const blob = await this.options.blobs.get(file.key);
    if (!blob) throw new Error(`blob ${file.key} is missing`);
    const temporary = `${path}.part-${process.pid}-${Date.now()}`;
    const hash = createHash("sha256");
    const out = createWriteStream(temporary);
    try {
      for await (const chunk of blob.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
      }
      await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
      const digest = hash.digest("hex");
      if (digest !== file.sha256) throw new Error(`blob ${file.key}: sha256 ${digest} != registered ${file.sha256}`);
      await rename(temporary, path);
    } catch (error) {
      out.destroy();
      await rm(temporary, { force: true });
      throw error;
    }
  }
}
