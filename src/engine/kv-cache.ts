/**
 * Key-value caches as onnxruntime tensors, [B, n_kv_heads, P, head_dim] per layer and key/value, named as the
 * graph's past inputs (docs/CONTRACTS.md "ONNX model"), and the fresh keys and values a forward returns.
 *
 * A version-2 graph returns only the keys and values of its T input positions (`new.{i}.key`, [B, H, T, D]) and
 * never copies the cache; the engine keeps the cache itself (./cache-buffer.ts). A version-1 graph (written before)
 * returns `present.{i}.key`, the past with the new columns appended; its fresh columns are its last T.
 */
import * as ort from "onnxruntime-node";
import type { ModelGeometry } from "./model-folder";

export type KvCache = Record<string, ort.Tensor>; // "past_key_values.{i}.key" -> tensor

/** Which outputs carry a forward's fresh keys and values. */
export type GraphVersion = 1 | 2;

export interface CacheName {
  past: string; // input: past_key_values.{i}.key
  present: string; // version-1 output: the past and the new columns
  fresh: string; // version-2 output: the new columns only
}

export function cacheNames(numLayers: number): CacheName[] {
  const names: CacheName[] = [];
  for (let i = 0; i < numLayers; i++) {
    for (const part of ["key", "value"]) names.push({ past: `past_key_values.${i}.${part}`, present: `present.${i}.${part}`, fresh: `new.${i}.${part}` });
  }
  return names;
}

/** The graph version of a session by its output names; null when it has neither kind of cache output. */
export function graphVersion(outputNames: readonly string[]): GraphVersion | null {
  if (outputNames.includes("new.0.key")) return 2;
  if (outputNames.includes("present.0.key")) return 1;
  return null;
}

/** The outputs to fetch from a forward: the logits and the fresh (or, version 1, the present) keys and values. */
export function fetchNames(numLayers: number, version: GraphVersion): string[] {
  return ["logits", ...cacheNames(numLayers).map((n) => (version === 2 ? n.fresh : n.present))];
}

export function emptyCache(g: ModelGeometry, batch: number): KvCache {
  const cache: KvCache = {};
  for (const { past } of cacheNames(g.numLayers)) {
    cache[past] = new ort.Tensor("float32", new Float32Array(0), [batch, g.numKvHeads, 0, g.headDim]);
  }
  return cache;
}

/** The keys and values of a forward's T input positions, [B, H, T, D], named as past inputs. */
export function freshFromOutputs(outputs: ort.InferenceSession.OnnxValueMapType, numLayers: number, version: GraphVersion, length: number): KvCache {
  const cache: KvCache = {};
  for (const { past, present, fresh } of cacheNames(numLayers)) {
    if (version === 2) cache[past] = outputs[fresh] as ort.Tensor;
    else cache[past] = lastColumns(outputs[present] as ort.Tensor, length);
  }
  return cache;
}

function lastColumns(tensor: ort.Tensor, length: number): ort.Tensor {
  const [batch, heads, columns, dim] = tensor.dims as number[];
  if (columns === length) return tensor;
  const source = tensor.data as Float32Array;
  const data = new Float32Array(batch * heads * length * dim);
  for (let bh = 0; bh < batch * heads; bh++) {
    const from = (bh * columns + columns - length) * dim;
    data.set(source.subarray(from, from + length * dim), bh * length * dim);
  }
  return new ort.Tensor("float32", data, [batch, heads, length, dim]);
}

/** A [1, H, length, D] copy of columns start..start+length-1 of row `row` of the cache. */
export function sliceRow(cache: KvCache, row: number, start: number, length: number): KvCache {
  const out: KvCache = {};
  for (const [name, tensor] of Object.entries(cache)) {
    const [batch, heads, columns, dim] = tensor.dims as number[];
    if (row < 0 || row >= batch || start < 0 || start + length > columns) throw new RangeError(`columns ${start}..${start + length} of row ${row} outside [${batch}, ${columns}]`);
    const source = tensor.data as Float32Array;
    const data = new Float32Array(heads * length * dim);
    for (let h = 0; h < heads; h++) {
      const from = ((row * heads + h) * columns + start) * dim;
      data.set(source.subarray(from, from + length * dim), h * length * dim);
    }
    out[name] = new ort.Tensor("float32", data, [1, heads, length, dim]);
  }
  return out;
}
