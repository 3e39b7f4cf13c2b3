/**
 * The key-value cache of a batch as onnxruntime tensors, [B, n_kv_heads, P, head_dim] per layer and key/value
 * (docs/CONTRACTS.md "ONNX model"). Rows of one request share the prompt, so the prompt is prefilled once and the
 * cache tiled to the batch; finished rows are dropped by gathering the remaining rows.
 */
import * as ort from "onnxruntime-node";
import type { ModelGeometry } from "./model-folder";

export type KvCache = Record<string, ort.Tensor>; // "past_key_values.{i}.key" -> tensor

export function cacheNames(numLayers: number): Array<{ past: string; present: string }> {
  const names: Array<{ past: string; present: string }> = [];
  for (let i = 0; i < numLayers; i++) {
    for (const part of ["key", "value"]) names.push({ past: `past_key_values.${i}.${part}`, present: `present.${i}.${part}` });
  }
  return names;
}

export function emptyCache(g: ModelGeometry, batch: number): KvCache {
  const cache: KvCache = {};
  for (const { past } of cacheNames(g.numLayers)) {
    cache[past] = new ort.Tensor("float32", new Float32Array(0), [batch, g.numKvHeads, 0, g.headDim]);
  }
  return cache;
}

/** The presents of a run, renamed as the pasts of the next run. */
export function cacheFromOutputs(outputs: ort.InferenceSession.OnnxValueMapType, numLayers: number): KvCache {
  const cache: KvCache = {};
  for (const { past, present } of cacheNames(numLayers)) cache[past] = outputs[present] as ort.Tensor;
  return cache;
}

/** A new cache whose row r is row rows[r] of the given one (repeat a row to tile, omit rows to drop them). */
export function gatherRows(cache: KvCache, rows: number[]): KvCache {
  const out: KvCache = {};
  for (const [name, tensor] of Object.entries(cache)) {
    const [batch, heads, length, dim] = tensor.dims as number[];
    const rowSize = heads * length * dim;
    const source = tensor.data as Float32Array;
    const data = new Float32Array(rows.length * rowSize);
    rows.forEach((row, r) => {
      if (row < 0 || row >= batch) throw new RangeError(`row ${row} outside a batch of ${batch}`);
      data.set(source.subarray(row * rowSize, (row + 1) * rowSize), r * rowSize);
    });
    out[name] = new ort.Tensor("float32", data, [rows.length, heads, length, dim]);
  }
  return out;
}

export function cacheLength(cache: KvCache): number {
  const first = Object.values(cache)[0];
  return first ? (first.dims[2] as number) : 0;
}
