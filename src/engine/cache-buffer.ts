/**
 * The key-value cache of a decoding batch, kept by the engine in buffers of its own: per layer and key/value one
 * Float32Array of [row capacity, H, C, D]. Row r keeps its n_r keys in columns 0..n_r-1 — the columns they have when
 * it decodes alone — and zeros after them, which its attention mask hides. Each forward reads the buffers in place
 * (onnxruntime wraps them, no copy) and returns only the new column of each row, which is written at column n_r.
 *
 * Why this layout is exact: the graph appends the step's own key after the C past columns, so it sits in column C of
 * every row's softmax. onnxruntime sums that softmax in SIMD lanes by column (./capacity-quantum.ts), and masked
 * columns add exact zeros, so a row's logits are the same for any two capacities C that differ by a multiple of the
 * session's capacity quantum Q: its keys never move, and its new key keeps its lane. C is therefore always a multiple
 * of the layout step L = max(Q, 16) (16 also bounds how often the buffers are laid out again as rows grow), alone
 * and batched alike.
 *
 * Rows are contiguous: a leaving row is replaced by the last one (its columns copied), so a forward never carries
 * empty rows. C grows by L when a row fills it and shrinks when the longest rows have left; both copy every row once.
 */
import * as ort from "onnxruntime-node";
import { cacheNames, type KvCache } from "./kv-cache";
import type { ModelGeometry } from "./model-folder";

/** Columns of capacity added at a time and kept at least: 16, or the quantum when larger. */
export const layoutStep = (quantum: number) => Math.max(quantum, 16);

const roundUp = (n: number, step: number) => Math.ceil(n / step) * step;

/** Buffers up to this size (all layers) are kept after a re-layout, to be reused by the next one. */
const SPARE_LIMIT_BYTES = 256 * 2 ** 20;

/**
 * Writes src [rows, H, D] (each row's fresh column) at column lengths[r] of each row of data [rows, H, C, D]. An
 * element loop over plain numbers: a subarray per row and head would be garbage every step.
 */
function appendColumns(data: Float32Array, src: Float32Array, lengths: number[], rows: number, heads: number, dim: number, rowStride: number, headStride: number): void {
  let from = 0;
  for (let r = 0; r < rows; r++) {
    let to = r * rowStride + lengths[r] * dim;
    for (let h = 0; h < heads; h++, to += headStride) {
      for (let d = 0; d < dim; d++) data[to + d] = src[from++];
    }
  }
}

export interface CacheBufferOptions {
  quantum: number; // the session's capacity quantum (./capacity-quantum.ts)
  /** Columns of capacity beyond what the rows need, a multiple of the quantum (probes and tests). Default 0. */
  extraColumns?: number;
  step?: number; // the layout step (default layoutStep(quantum)); a multiple of the quantum
}

export class CacheBuffer {
  private readonly names: string[];
  private data: Record<string, Float32Array> = {};
  private spare: Record<string, Float32Array> = {}; // the buffers before the last re-layout, reused by the next
  private maskBuffer = new BigInt64Array(0);
  private rowCapacity = 0;
  private readonly lengths: number[] = [];
  /** C: the past columns every forward reads. */
  columns = 0;
  /** How many times the buffers were laid out again (growth, shrinking, more rows). */
  relayouts = 0;
  readonly step: number;
  private readonly extra: number;

  constructor(
    private readonly g: ModelGeometry,
    options: CacheBufferOptions,
  ) {
    const { quantum } = options;
    this.step = options.step ?? layoutStep(quantum);
    this.extra = options.extraColumns ?? 0;
    if (!Number.isInteger(quantum) || quantum < 1) throw new RangeError(`quantum must be a positive integer, got ${quantum}`);
    if (this.step % quantum !== 0 || this.extra % quantum !== 0) throw new RangeError(`layout step and extra columns must be multiples of the quantum ${quantum}`);
    this.names = cacheNames(g.numLayers).map((n) => n.past);
  }

  get rows(): number {
    return this.lengths.length;
  }

  /** Floats of one row in each buffer. */
  private get rowSize(): number {
    return this.g.numKvHeads * this.columns * this.g.headDim;
  }

  length(row: number): number {
    return this.lengths[row];
  }

  /** Sum of the rows' lengths over rows x C: the share of the forward's cache holding keys. */
  fill(): number {
    const total = this.rows * this.columns;
    return total === 0 ? 1 : this.lengths.reduce((a, b) => a + b, 0) / total;
  }

  /** The past inputs of the next forward: [rows, H, C, D] views of the buffers. */
  tensors(): KvCache {
    const out: KvCache = {};
    const size = this.rows * this.rowSize;
    for (const name of this.names) {
      out[name] = new ort.Tensor("float32", this.data[name].subarray(0, size), [this.rows, this.g.numKvHeads, this.columns, this.g.headDim]);
    }
    return out;
  }

  /**
   * The attention mask of the next forward, [rows, C + 1]: each row sees its own columns and the new one. A view of
   * one buffer, rewritten by the next call (onnxruntime reads it during the forward only).
   */
  mask(): BigInt64Array {
    const width = this.columns + 1;
    const size = this.rows * width;
    if (this.maskBuffer.length < size) this.maskBuffer = new BigInt64Array(Math.max(size, 2 * this.maskBuffer.length));
    const mask = this.maskBuffer.subarray(0, size);
    mask.fill(0n);
    this.lengths.forEach((n, r) => {
      mask.fill(1n, r * width, r * width + n);
      mask[r * width + this.columns] = 1n;
    });
    return mask;
  }

  /** Appends a row whose keys are columns 0..length-1 of row `row` of `source` ([B, H, P, D]); returns its index. */
  addRow(source: KvCache, row: number, length: number): number {
    for (const name of this.names) {
      const [batch, , columns] = source[name].dims as number[];
      if (row < 0 || row >= batch || length > columns) throw new RangeError(`row ${row} of ${length} columns outside [${batch}, ${columns}]`);
    }
    const r = this.rows;
    this.reserve(r + 1, Math.max(length, this.longest()));
    this.lengths.push(length);
    for (const name of this.names) {
      const from = source[name];
      const [, heads, columns, dim] = from.dims as number[];
      const src = from.data as Float32Array;
      const data = this.data[name];
      for (let h = 0; h < heads; h++) {
        const base = (r * heads + h) * this.columns * dim;
        data.set(src.subarray(((row * heads + h) * columns) * dim, ((row * heads + h) * columns + length) * dim), base);
        data.fill(0, base + length * dim, base + this.columns * dim);
      }
    }
    return r;
  }

  /** Removes row `row`; the last row takes its index. Returns the index that moved into it (-1: none moved). */
  removeRow(row: number): number {
    const last = this.rows - 1;
    if (row < 0 || row > last) throw new RangeError(`row ${row} outside ${this.rows} rows`);
    if (row !== last) {
      const size = this.rowSize;
      for (const name of this.names) this.data[name].copyWithin(row * size, last * size, (last + 1) * size);
      this.lengths[row] = this.lengths[last];
    }
    this.lengths.pop();
    if (this.rows === 0) this.clear();
    return row === last ? -1 : last;
  }

  /** Drops every row and the buffers. */
  clear(): void {
    this.lengths.length = 0;
    this.data = {};
    this.spare = {};
    this.rowCapacity = 0;
    this.columns = 0;
  }

  /**
   * Before a forward: shrinks C when at least two layout steps are unused (the longest rows left). Rows are never
   * longer than C here, and each row's new key goes to column C.
   */
  trim(): void {
    const target = this.target(this.longest());
    if (this.columns - target >= 2 * this.step) this.relayout(this.rows, target);
  }

  /** Writes each row's fresh key and value ([rows, H, 1, D]) at its column n and lengthens it. */
  append(fresh: KvCache): void {
    const longest = this.longest();
    this.reserve(this.rows, longest + 1);
    const { numKvHeads: heads, headDim: dim } = this.g;
    const rows = this.rows;
    const rowStride = heads * this.columns * dim;
    const headStride = this.columns * dim;
    const lengths = this.lengths;
    for (const name of this.names) {
      const src = fresh[name].data as Float32Array;
      if (src.length !== rows * heads * dim) throw new RangeError(`${name}: ${src.length} fresh values for ${rows} rows`);
      appendColumns(this.data[name], src, lengths, rows, heads, dim, rowStride, headStride);
    }
    for (let r = 0; r < rows; r++) lengths[r]++;
  }

  private longest(): number {
    let max = 0;
    for (const n of this.lengths) max = Math.max(max, n);
    return max;
  }

  /** The capacity for rows of at most `needed` keys. */
  private target(needed: number): number {
    return roundUp(needed, this.step) + this.extra;
  }

  /** Room for `rows` rows of `needed` columns: the buffers as they are, or laid out again at target(needed). */
  private reserve(rows: number, needed: number): void {
    const columns = this.rows > 0 && needed <= this.columns ? this.columns : this.target(needed);
    if (rows > this.rowCapacity || columns !== this.columns) this.relayout(rows, columns);
  }

  /** Buffers of `newColumns` columns and room for `rows` rows, each row's keys copied over. */
  private relayout(rows: number, newColumns: number): void {
    const newCapacity = rows <= this.rowCapacity ? this.rowCapacity : Math.max(rows, 2 * this.rowCapacity, 4);
    const { numKvHeads: heads, headDim: dim } = this.g;
    const data: Record<string, Float32Array> = {};
    const size = newCapacity * heads * newColumns * dim;
    for (const name of this.names) {
      // the buffer of the layout before last when it is large enough (no garbage: re-layouts come every few steps)
      const reused = this.spare[name]?.length >= size ? this.spare[name] : null;
      const next = reused ? reused.fill(0, 0, size) : new Float32Array(size);
      const old = this.data[name];
      if (old) {
        const keep = Math.min(this.columns, newColumns) * dim;
        for (let rh = 0; rh < this.rows * heads; rh++) next.set(old.subarray(rh * this.columns * dim, rh * this.columns * dim + keep), rh * newColumns * dim);
      }
      data[name] = next;
    }
    if (this.rows > 0) this.relayouts++;
    // kept for the next re-layout unless large: it doubles the cache's memory (a big model's steps dwarf the copy)
    const oldBytes = Object.values(this.data).reduce((sum, buffer) => sum + buffer.byteLength, 0);
    this.spare = oldBytes <= SPARE_LIMIT_BYTES ? this.data : {};
    this.data = data;
    this.rowCapacity = newCapacity;
    this.columns = newColumns;
  }
}
