/**
 * Reads the parts of a model folder (docs/CONTRACTS.md "Model folder") that the ONNX engine needs:
 * the cache geometry from config.json, the context length from manifest.json, and the chat tokenizer.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ChatTokenizer } from "./tokenizer";

export interface ModelGeometry {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
}

async function readJson(folder: string, name: string, required: boolean): Promise<Record<string, any> | null> {
  try {
    return JSON.parse(await readFile(join(folder, name), "utf8"));
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`model folder ${folder}: cannot read ${name} (${(error as Error).message})`);
  }
}

function positiveInt(value: unknown, field: string): number {
  if (!Number.isInteger(value) || (value as number) <= 0) throw new Error(`config.json: ${field} must be a positive integer`);
  return value as number;
}

export async function readModelGeometry(folder: string): Promise<ModelGeometry> {
  const config = (await readJson(folder, "config.json", true))!;
  const manifest = await readJson(folder, "manifest.json", false);
  const heads = positiveInt(config.num_attention_heads, "num_attention_heads");
  const hidden = positiveInt(config.hidden_size, "hidden_size");
  return {
    numLayers: positiveInt(config.num_hidden_layers, "num_hidden_layers"),
    numKvHeads: positiveInt(config.num_key_value_heads ?? heads, "num_key_value_heads"),
    headDim: positiveInt(config.head_dim ?? hidden / heads, "head_dim"),
    vocabSize: positiveInt(config.vocab_size, "vocab_size"),
    contextLength: positiveInt(manifest?.context_length ?? config.max_position_embeddings, "context_length"),
  };
}

export async function loadChatTokenizer(folder: string): Promise<ChatTokenizer> {
  const json = await readJson(folder, "tokenizer.json", true);
  const config = await readJson(folder, "tokenizer_config.json", true);
  return ChatTokenizer.fromJson(json!, config!);
}
