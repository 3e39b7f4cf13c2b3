/**
 * The alignment quantum of a session: the smallest Q such that left-padding a row by any multiple of Q masked
 * columns leaves its logits bit for bit what they are without padding, in a batch of any size.
 *
 * Why a quantum at all: onnxruntime's softmax sums exp(x - max) in SIMD lanes (MLAS: one 8- or 16-lane accumulator,
 * lane = column mod the width, reduced pairwise at the end), so the float sum of a row depends on which lane each of
 * its keys lands in. Masked columns add exact zeros, and every other operation (matmuls, norms, the projections) is
 * per row with a fixed reduction order, so a row keeps its exact logits when its keys move by a shift that keeps
 * their lanes, or that only swaps lane groups the final pairwise reduction adds commutatively (4 on both the AVX2 and
 * the AVX-512 kernels). A shift by 1 does not: the logits move in the last bits, and a sample could drift.
 *
 * The continuous batch (./batch-scheduler.ts) keeps every row's padding a multiple of Q, so each sample is the same
 * as alone. Q is measured rather than assumed, at load, on the session itself: a few short decodes alone and padded
 * by Q, 2Q and 3Q, compared bit for bit, for Q = 1, 2, 4, ... 64. A session for which none holds (another kernel
 * library, another execution provider) gets null: the engine then decodes each request alone, as before batching.
 */
import { emptyCache, layoutRows, type KvCache } from "./kv-cache";
import type { ModelGeometry } from "./model-folder";

export interface MaskedForward {
  readonly geometry: ModelGeometry;
  /** One forward of B rows x T positions (k slots each); `mask` [B, P+T] (default all ones). */
  forward(
    ids: BigInt64Array,
    weights: Float32Array,
    dims: [number, number, number],
    cache: KvCache,
    positions: number[][],
    mask?: BigInt64Array,
  ): Promise<{ logits: Float32Array; cache: KvCache }>;
}

export const QUANTUM_CANDIDATES = [1, 2, 4, 8, 16, 32, 64];
const PROMPT_LENGTHS = [7, 22]; // different remainders modulo every lane width
const STEPS = 3;
const SLOTS = 3; // soft inputs: three mixed tokens a step

interface Case {
  prompt: number;
  cache: KvCache;
  inputs: Array<{ ids: BigInt64Array; weights: Float32Array }>;
  expected: Float32Array[]; // logits of each decode step, alone
}

/** A small deterministic generator for probe inputs. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

export async function probeAlignment(model: MaskedForward): Promise<number | null> {
  const cases = await probeCases(model);
  for (const quantum of QUANTUM_CANDIDATES) {
    if (await paddingHolds(model, cases, quantum)) return quantum;
  }
  return null;
}

async function probeCases(model: MaskedForward): Promise<Case[]> {
  const g = model.geometry;
  const vocab = g.vocabSize;
  const rand = lcg(20261202);
  const cases: Case[] = [];
  for (const prompt of PROMPT_LENGTHS) {
    const ids = BigInt64Array.from({ length: prompt }, () => BigInt(Math.floor(rand() * vocab)));
    const positions = [Array.from({ length: prompt }, (_, i) => i)];
    const prefill = await model.forward(ids, new Float32Array(prompt).fill(1), [1, prompt, 1], emptyCache(g, 1), positions);
    const inputs = Array.from({ length: STEPS }, () => {
      const raw = Array.from({ length: SLOTS }, () => rand() + 0.05);
      const sum = raw.reduce((a, b) => a + b, 0);
      return {
        ids: BigInt64Array.from({ length: SLOTS }, () => BigInt(Math.floor(rand() * vocab))),
        weights: Float32Array.from(raw, (w) => w / sum),
      };
    });
    const expected: Float32Array[] = [];
    let cache = prefill.cache;
    for (let t = 0; t < STEPS; t++) {
      const out = await model.forward(inputs[t].ids, inputs[t].weights, [1, 1, SLOTS], cache, [[prompt + t]]);
      expected.push(out.logits.slice(0, vocab));
      cache = out.cache;
    }
    cases.push({ prompt, cache: prefill.cache, inputs, expected });
  }
  return cases;
}

/** Each case decoded padded by quantum, 2 quantum and 3 quantum, beside an empty row, equals its decode alone. */
async function paddingHolds(model: MaskedForward, cases: Case[], quantum: number): Promise<boolean> {
  const g = model.geometry;
  const vocab = g.vocabSize;
  for (const c of cases) {
    for (const shift of [quantum, 2 * quantum, 3 * quantum]) {
      let length = c.prompt + shift;
      // row 0: the case, left-padded; row 1: an empty row that only sees its own new position
      let cache = layoutRows([{ cache: c.cache, row: 0, length: c.prompt }, { cache: c.cache, row: 0, length: 0 }], length, g);
      for (let t = 0; t < STEPS; t++) {
        const mask = new BigInt64Array(2 * (length + 1));
        mask.fill(1n, shift, length + 1);
        mask[2 * (length + 1) - 1] = 1n;
        const ids = new BigInt64Array(2 * SLOTS);
        const weights = new Float32Array(2 * SLOTS);
        ids.set(c.inputs[t].ids);
        weights.set(c.inputs[t].weights);
        const out = await model.forward(ids, weights, [2, 1, SLOTS], cache, [[c.prompt + t], [0]], mask);
        const logits = out.logits.subarray(0, vocab);
        for (let i = 0; i < vocab; i++) if (!Object.is(logits[i], c.expected[t][i])) return false;
        cache = out.cache;
        length++;
      }
    }
  }
  return true;
}
