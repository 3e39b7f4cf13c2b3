/**
 * The messages between an engine's ThreadPrefiller (./prefill-thread-client.ts) and its prefill thread
 * (./prefill-thread.ts). A prefill crosses as plain typed arrays (ort.Tensor is not a structured clone) and is
 * rebuilt as tensors on the engine's side.
 */
import type { MessagePort } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import type { ThreadError } from "./engine-thread-protocol";
import type { Prefill } from "./prefill-cache";

/** workerData of a prefill thread: the model folder, the engine's session options, and its end of the channel. */
export interface PrefillThreadData {
  entryModule: "./prefill-thread.ts";
  folder: string;
  intraOpThreads?: number;
  port: MessagePort; // the engine's ThreadPrefiller holds the other end
}

export interface WirePrefill {
  cache: Record<string, { data: Float32Array; dims: number[] }>;
  logits: Float32Array;
}

export type ToPrefillThread = { type: "prefill"; id: number; prompts: number[][] } | { type: "close" };

export type FromPrefillThread =
  | { type: "ready" }
  | { type: "load_failed"; error: ThreadError }
  | { type: "prefilled"; id: number; prefills: WirePrefill[] }
  | { type: "failed"; id: number; error: ThreadError };

export function toWire(prefill: Prefill): WirePrefill {
  const cache: WirePrefill["cache"] = {};
  for (const [name, tensor] of Object.entries(prefill.cache)) cache[name] = { data: tensor.data as Float32Array, dims: [...tensor.dims] };
  return { cache, logits: prefill.logits };
}

export function fromWire(wire: WirePrefill): Prefill {
  const cache: Prefill["cache"] = {};
  for (const [name, { data, dims }] of Object.entries(wire.cache)) cache[name] = new ort.Tensor("float32", data, dims);
  return { cache, logits: wire.logits };
}
