/**
 * The capacity quantum of a session: the smallest Q such that a row's logits are bit for bit the same whatever the
 * capacity C of the cache it decodes in, among capacities that are multiples of Q, and whatever else is in its batch.
 *
 * Why a quantum at all: onnxruntime's softmax sums exp(x - max) in SIMD lanes (MLAS: lane = column mod the width,
 * the lanes reduced pairwise at the end), so the float sum of a row depends on which lane each key lands in. In the
 * engine's cache (./cache-buffer.ts) a row's keys sit in columns 0..n-1 wherever it decodes, masked columns add exact
 * zeros, and the step's own key comes after the C past columns, in column C. Moving C by a multiple of the lane
 * pattern keeps that key in its lane; moving it by 1 does not, and the logits change in the last bits — enough, over
 * a long soft-thinking chain, to change a sample (16 on the AVX-512 development machine: C moved by 8 already
 * differs for some lengths). Every other operation (projections, norms, the value products) is per row with a fixed
 * reduction order, to which the zero columns add exact zeros.
 *
 * Q is measured rather than assumed, at load, on the session itself: a few short decodes alone (C the length rounded
 * up to Q) and in a batch of three beside rows of other lengths with C larger by Q, 2Q, 3Q, 8Q and over a thousand,
 * compared bit for bit, for Q = 1, 2, 4, ... 64. A session for which none holds gets null: the engine then decodes
 * each request alone. Version-1 graphs (model.onnx written before the engine kept the cache) are not probed: their
 * rows are not exact at every capacity (see capacityHolds), so the engine decodes their requests alone.
 */
import { prefillTogether } from "./batch-prefill";
import { CacheBuffer } from "./cache-buffer";
import { decodeStep } from "./decode-step";
import type { KvCache } from "./kv-cache";
import type { ModelGeometry } from "./model-folder";
import type { ModelInput } from "./sample-decoder";

/** What the probe, the prefill and the scheduler need of an engine: one masked forward. */
export interface MaskedForward {
  readonly geometry: ModelGeometry;
  /**
   * One forward of B rows x T positions (k slots each) after a cache of P columns; `mask` [B, P+T] (default all
   * ones). Returns the logits [B, T, V] and the fresh keys and values of the T positions, [B, H, T, D] per name.
   */
  forward(
    ids: BigInt64Array,
    weights: Float32Array,
    dims: [number, number, number],
    cache: KvCache,
    positions: number[][],
    mask?: BigInt64Array,
  ): Promise<{ logits: Float32Array; fresh: KvCache }>;
}

export const QUANTUM_CANDIDATES = [1, 2, 4, 8, 16, 32, 64];
const PROMPT_LENGTHS = [7, 22, 70]; // different remainders modulo every lane width
const NEIGHBOURS = [3, 40]; // the other rows of the batch: shorter, and longer than every case
const STEPS = 3;
const LONG_CAPACITY = 1100; // extra columns of the last comparison: past 512 and 1024
const SLOTS = 3; // soft inputs: three mixed tokens a step

interface Case {
  prompt: number;
  cache: KvCache; // its prefill, [1, H, prompt, D]
  inputs: ModelInput[]; // one a step
}

/** A small deterministic generator for probe inputs. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

export async function probeCapacityQuantum(model: MaskedForward): Promise<number | null> {
  const cases = await probeCases(model);
  for (const quantum of QUANTUM_CANDIDATES) if (await capacityHolds(model, cases, quantum)) return quantum;
  return null;
}

async function probeCases(model: MaskedForward): Promise<Case[]> {
  const vocab = model.geometry.vocabSize;
  const rand = lcg(20261202);
  const cases: Case[] = [];
  for (const prompt of [...PROMPT_LENGTHS, ...NEIGHBOURS]) {
    const [prefill] = await prefillTogether(model, [Array.from({ length: prompt }, () => Math.floor(rand() * vocab))]);
    const inputs = Array.from({ length: STEPS }, () => {
      const raw = Array.from({ length: SLOTS }, () => rand() + 0.05);
      const sum = raw.reduce((a, b) => a + b, 0);
      return { ids: Array.from({ length: SLOTS }, () => Math.floor(rand() * vocab)), weights: raw.map((w) => w / sum) };
    });
    cases.push({ prompt, cache: prefill.cache, inputs });
  }
  return cases;
}

/**
 * Decodes STEPS steps of `rows` (cases) together in a buffer of the given quantum and extra capacity; returns the
 * logits of row 0 at each step.
 */
async function decodeRows(model: MaskedForward, rows: Case[], quantum: number, extraColumns: number, step = quantum): Promise<Float32Array[]> {
  const vocab = model.geometry.vocabSize;
  const buffer = new CacheBuffer(model.geometry, { quantum, extraColumns, step });
  for (const c of rows) buffer.addRow(c.cache, 0, c.prompt);
  const logits: Float32Array[] = [];
  for (let t = 0; t < STEPS; t++) logits.push((await decodeStep(model, buffer, rows.map((c) => c.inputs[t]))).slice(0, vocab));
  return logits;
}

/**
 * Each case decoded alone equals it decoded beside the neighbours with Q, 2Q, 3Q, 8Q and over a thousand more
 * columns (past the matrix products' blocking of long rows: MLAS's sums over more than 512 columns are split in
 * blocks, so in a version-1 graph, whose single value product takes the new column after the past ones, a new column
 * in a later block than alone rounds differently; a version-2 graph adds it in a product of its own).
 */
async function capacityHolds(model: MaskedForward, all: Case[], quantum: number): Promise<boolean> {
  const cases = all.slice(0, PROMPT_LENGTHS.length);
  const neighbours = all.slice(PROMPT_LENGTHS.length);
  for (const c of cases) {
    const alone = await decodeRows(model, [c], quantum, 0);
    for (const extra of [quantum, 2 * quantum, 3 * quantum, 8 * quantum, Math.ceil(LONG_CAPACITY / quantum) * quantum]) {
      const batched = await decodeRows(model, [c, ...neighbours], quantum, extra);
      if (!batched.every((logits, t) => logits.every((v, i) => Object.is(v, alone[t][i])))) return false;
    }
  }
  return true;
}
