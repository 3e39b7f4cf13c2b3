/**
 * Prefills several prompts in one forward, each exactly as its prefill alone.
 *
 * The prompts share a batch of T = the longest prompt's length by right padding: prompt r's tokens sit at columns
 * 0..n-1 of its row, at positions 0..n-1 as alone, and the columns after them are padding its attention mask hides.
 * Its causal queries then see the same keys in the same columns as alone, and the padding only adds masked columns
 * after the last one each query may see. Left padding would not do this: it moves the keys' columns, and the per-lane
 * sums of onnxruntime's softmax (./capacity-quantum.ts) change for most shifts. Whether right padding is exact is a property of the session's kernels, so it is measured at load
 * (`prefillTogetherHolds`) rather than assumed; an engine for which it does not hold prefills each prompt alone.
 *
 * Each prompt's keys are copied out of the batch into a cache of its own ([1, H, n, D]), the shape of a prefill
 * alone, so prefills kept for reuse (./prefill-cache.ts) are the same whichever way they were computed.
 */
import type { MaskedForward } from "./capacity-quantum";
import { emptyCache, sliceRow } from "./kv-cache";
import type { Prefill } from "./prefill-cache";

/** The prefills of `prompts` (each non-empty), one forward for all of them. */
export async function prefillTogether(model: MaskedForward, prompts: number[][]): Promise<Prefill[]> {
  const g = model.geometry;
  const vocab = g.vocabSize;
  if (prompts.length === 1) {
    const [prompt] = prompts;
    const n = prompt.length;
    const ids = BigInt64Array.from(prompt, (id) => BigInt(id));
    const out = await model.forward(ids, new Float32Array(n).fill(1), [1, n, 1], emptyCache(g, 1), [prompt.map((_, i) => i)]);
    return [{ cache: out.fresh, logits: out.logits.slice((n - 1) * vocab, n * vocab) }];
  }
  const batch = prompts.length;
  const length = Math.max(...prompts.map((p) => p.length));
  const ids = new BigInt64Array(batch * length);
  const weights = new Float32Array(batch * length);
  const mask = new BigInt64Array(batch * length);
  const positions: number[][] = [];
  prompts.forEach((prompt, r) => {
    prompt.forEach((id, i) => {
      ids[r * length + i] = BigInt(id);
      weights[r * length + i] = 1;
      mask[r * length + i] = 1n;
    });
    positions.push(Array.from({ length }, (_, i) => i)); // the padding's positions continue the row's; it is masked
  });
  const out = await model.forward(ids, weights, [batch, length, 1], emptyCache(g, batch), positions, mask);
  return prompts.map((prompt, r) => {
    const last = r * length + prompt.length - 1;
    return { cache: sliceRow(out.fresh, r, 0, prompt.length), logits: out.logits.slice(last * vocab, (last + 1) * vocab) };
  });
}

/** A small deterministic generator for probe inputs. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const PROBE_LENGTHS = [7, 22, 13, 40, 31]; // different remainders modulo every lane width; 40 pads the others past 32

/** Whether prompts prefilled together give, bit for bit, the logits and keys each gives alone, on this session. */
export async function prefillTogetherHolds(model: MaskedForward): Promise<boolean> {
  const vocab = model.geometry.vocabSize;
  const rand = lcg(20261203);
  const prompts = PROBE_LENGTHS.map((n) => Array.from({ length: n }, () => Math.floor(rand() * vocab)));
  const alone: Prefill[] = [];
  for (const prompt of prompts) alone.push(...(await prefillTogether(model, [prompt])));
  // all together, and a pair whose longer prompt pads the shorter by a few columns only
  for (const group of [[0, 1, 2, 3, 4], [4, 1]]) {
    const together = await prefillTogether(model, group.map((i) => prompts[i]));
    for (const [j, i] of group.entries()) if (!samePrefill(together[j], alone[i])) return false;
  }
  return true;
}

/** Whether two prefills have the same logits and keys, bit for bit. */
export function samePrefill(a: Prefill, b: Prefill): boolean {
  if (!sameFloats(a.logits, b.logits)) return false;
  return Object.keys(b.cache).every((name) => sameFloats(a.cache[name].data as Float32Array, b.cache[name].data as Float32Array));
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
