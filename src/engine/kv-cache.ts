/**
 * The key-value cache of a batch as onnxruntime tensors, [B, n_kv_heads, P, head_dim] per layer and key/value
 * (docs/CONTRACTS.md "ONNX model"). Rows of one request share the prompt, so the prompt is prefilled once and the
 * cache tiled to the batch; finished rows are dropped by gathering the remaining rows.
 *
 * In a batch of several requests (./batch-scheduler.ts) rows hold different lengths: a row of length n keeps its keys
 * in the last n columns of the P, after P - n columns of zeros that its attention mask hides (left padding).
 * `layoutRows` builds such a cache from rows of other caches; `writeRow` replaces one row in place.
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

/** A row of a cache to place in a batch: row `row` of `cache`, whose keys are its last `length` columns. */
export interface RowSource {
  cache: KvCache;
  row: number;
  length: number;
}

/**
 * A cache of `length` columns whose row r holds sources[r] right-aligned: its keys in the last sources[r].length
 * columns, zeros before them.
 */
export function layoutRows(sources: RowSource[], length: number, g: ModelGeometry): KvCache {
  const out: KvCache = {};
  for (const { past } of cacheNames(g.numLayers)) {
    const data = new Float32Array(sources.length * g.numKvHeads * length * g.headDim);
    out[past] = new ort.Tensor("float32", data, [sources.length, g.numKvHeads, length, g.headDim]);
  }
  sources.forEach((source, r) => copyRow(out, r, source, false));
  return out;
}

/** Overwrites row `row` of `target` in place with `source`, right-aligned, zeros before it. */
export function writeRow(target: KvCache, row: number, source: RowSource): void {
  copyRow(target, row, source, true);
}

function copyRow(target: KvCache, row: number, source: RowSource, clear: boolean): void {
  for (const [name, tensor] of Object.entries(target)) {
    const [batch, heads, length, dim] = tensor.dims as number[];
    const from = source.cache[name];
    const [fromBatch, , fromLength] = from.dims as number[];
    const n = source.length;
    if (row < 0 || row >= batch || source.row < 0 || source.row >= fromBatch) throw new RangeError(`row outside the batch`);
    if (n > length || n > fromLength) throw new RangeError(`a row of ${n} positions does not fit ${length} (source ${fromLength})`);
    const data = tensor.data as Float32Array;
    const src = from.data as Float32Array;
    for (let h = 0; h < heads; h++) {
      const base = ((row * heads + h) * length) * dim;
      const srcBase = ((source.row * heads + h) * fromLength + (fromLength - n)) * dim;
      if (clear) data.fill(0, base, base + (length - n) * dim);
      data.set(src.subarray(srcBase, srcBase + n * dim), base + (length - n) * dim);
    }
  }
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
