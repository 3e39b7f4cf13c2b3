/**
 * Soft-thinking and discrete sampling steps, exactly as docs/CONTRACTS.md "Sampling" (SOFT_GRPO.md section 1).
 * The PyTorch reference is gpu-worker/src/softgrpo/sampler.py; both pass tests/vectors/philox.json.
 *
 *   p        = softmax(z / temperature), then top_k, top_p, min_p filters (renormalised after each)
 *   (q, ids) = topk(p, max_topk) (ties: lower id), q /= sum(q)
 *   gp_i     = log(q_i + 1e-6) + noise_scale * g_i          g from Philox stream 0, slot i
 *   weights  = softmax(gp / gumbel_tau)
 *   emitted  = ids[argmax_i gp_i] (ties: lower slot)
 *
 * A discrete step inverts the cumulative sum of the filtered, sorted p at a Philox uniform (stream 1, slot 0);
 * temperature 0 is greedy. Computed in float64 (the Python side uses float32; vectors agree within 1e-5).
 */
import { STREAM_DISCRETE, STREAM_GUMBEL, gumbelAt, uniformAt } from "./philox";

const Q_EPS = 1e-6;

export interface FilterSettings {
  temperature: number;
  top_k: number; // 0 = off
  top_p: number; // 1 = off
  min_p: number; // 0 = off
}

export interface SoftStepSettings extends FilterSettings {
  max_topk: number;
  gumbel_tau: number;
  noise_scale: number;
  clamp_noise?: boolean; // default true; false only in tests
}

/** Philox coordinates of one generated position of one sample. */
export interface StepCoordinates {
  seed: number;
  sample: number;
  step: number;
}

/** The kept part of a filtered distribution: ids in descending probability (ties: lower id), probs summing to 1. */
export interface FilteredDistribution {
  ids: Int32Array;
  probs: Float64Array;
}

export interface SoftStep {
  ids: number[]; // [k], descending q
  gp: number[]; // [k], perturbed log-probabilities
  weights: number[]; // [k], softmax(gp / gumbel_tau): the next input mixture
  emitted: number; // the text token
  entropy: number; // entropy of the filtered p (cold stop)
}

/** Indices of the `limit` largest values, descending, ties to the lower index (a stable descending sort prefix). */
export function topIndices(values: ArrayLike<number>, limit: number): number[] {
  const n = values.length;
  if (limit <= 0) return [];
  if (limit >= n / 4) {
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => values[b] - values[a] || a - b);
    return order.slice(0, limit);
  }
  // partial selection: keep a sorted buffer of the best `limit`; scanning in id order makes ties keep the lower id
  const best: number[] = [];
  let worst = -Infinity; // the value of the buffer's last entry once it is full
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (best.length === limit && v <= worst) continue;
    let at = best.length === limit ? limit - 1 : best.length; // a full buffer drops its last entry
    while (at > 0 && values[best[at - 1]] < v) {
      best[at] = best[at - 1];
      at--;
    }
    best[at] = i;
    if (best.length > limit) best.length = limit;
    if (best.length === limit) worst = values[best[limit - 1]];
  }
  return best;
}

// softmax scratch, reused by every call on this thread: one vocabulary-sized array a step would be garbage (a batch of
// 32 rows makes 32 a step); filterLogits copies what it keeps out of it before returning
let scratch = new Float64Array(0);

function softmaxWithTemperature(logits: ArrayLike<number>, temperature: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (scratch.length !== logits.length) scratch = new Float64Array(logits.length);
  const p = scratch;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** Divides probs[0..kept) by their sum, in place (the sum in index order). */
function renormalise(probs: Float64Array, kept: number): void {
  let sum = 0;
  for (let i = 0; i < kept; i++) sum += probs[i];
  for (let i = 0; i < kept; i++) probs[i] /= sum;
}

/** p = softmax(logits / temperature) with the top_k, top_p and min_p filters; returns the kept tokens, sorted. */
export function filterLogits(logits: ArrayLike<number>, s: FilterSettings): FilteredDistribution {
  if (!(s.temperature > 0)) throw new RangeError(`temperature must be > 0 for sampling, got ${s.temperature}`);
  const p = softmaxWithTemperature(logits, s.temperature);
  const vocab = p.length;
  const limit = s.top_k > 0 && s.top_k < vocab ? s.top_k : vocab;
  const order = topIndices(p, limit);
  let kept = order.length;
  const probs = new Float64Array(kept);
  for (let i = 0; i < kept; i++) probs[i] = p[order[i]];
  renormalise(probs, kept);
  if (s.top_p < 1) {
    let before = 0; // mass strictly before position i: keep the shortest prefix whose sum reaches top_p
    let i = 0;
    while (i < kept && (i === 0 || before < s.top_p)) before += probs[i++];
    kept = i;
    renormalise(probs, kept);
  }
  if (s.min_p > 0) {
    const threshold = s.min_p * probs[0];
    let i = 1;
    while (i < kept && probs[i] >= threshold) i++;
    kept = i;
    renormalise(probs, kept);
  }
  const ids = new Int32Array(kept);
  for (let i = 0; i < kept; i++) ids[i] = order[i];
  return { ids, probs: kept === probs.length ? probs : probs.slice(0, kept) };
}

/** -sum p log p of a filtered distribution. */
export function entropyOf(dist: FilteredDistribution): number {
  let h = 0;
  for (const v of dist.probs) if (v > 0) h -= v * Math.log(v);
  return h;
}

/**
 * The k candidates of a soft step: the kept ids in order, then (as a stable sort of the zeroed vocabulary does)
 * the lowest removed ids with probability 0 when fewer than k tokens survive the filters.
 */
function candidates(dist: FilteredDistribution, k: number, vocab: number): { ids: number[]; q: number[] } {
  const kept = Math.min(k, dist.ids.length);
  const ids: number[] = new Array(kept);
  const q: number[] = new Array(kept);
  for (let i = 0; i < kept; i++) {
    ids[i] = dist.ids[i];
    q[i] = dist.probs[i];
  }
  if (ids.length < k) {
    for (let id = 0; id < vocab && ids.length < k; id++) {
      if (!dist.ids.includes(id)) {
        ids.push(id);
        q.push(0);
      }
    }
  }
  let sum = 0;
  for (const v of q) sum += v;
  for (let i = 0; i < q.length; i++) q[i] /= sum;
  return { ids, q };
}

/** One soft-thinking step for one row of logits [V]. */
export function softTokenStep(logits: ArrayLike<number>, cfg: SoftStepSettings, at: StepCoordinates): SoftStep {
  const dist = filterLogits(logits, cfg);
  const { ids, q } = candidates(dist, Math.min(cfg.max_topk, logits.length), logits.length);
  const clamp = cfg.clamp_noise ?? true;
  const k = q.length;
  const gp: number[] = new Array(k);
  let best = 0;
  for (let slot = 0; slot < k; slot++) {
    const noise = cfg.noise_scale === 0 ? 0 : cfg.noise_scale * gumbelAt(at.seed, at.sample, at.step, slot, STREAM_GUMBEL, clamp);
    gp[slot] = Math.log(q[slot] + Q_EPS) + noise;
    if (gp[slot] > gp[best]) best = slot;
  }
  // weights = softmax(gp / gumbel_tau), shifted by the largest
  const weights: number[] = new Array(k);
  let total = 0;
  for (let slot = 0; slot < k; slot++) {
    weights[slot] = Math.exp((gp[slot] - gp[best]) / cfg.gumbel_tau);
    total += weights[slot];
  }
  for (let slot = 0; slot < k; slot++) weights[slot] /= total;
  return { ids, gp, weights, emitted: ids[best], entropy: entropyOf(dist) };
}

/** Index of the largest logit, ties to the lower id. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** One ordinary sampling step for one row of logits [V]; temperature 0 is greedy. */
export function discreteStep(logits: ArrayLike<number>, s: FilterSettings, at: StepCoordinates): number {
  if (s.temperature === 0) return argmax(logits);
  const dist = filterLogits(logits, s);
  const u = uniformAt(at.seed, at.sample, at.step, 0, STREAM_DISCRETE);
  let cumulative = 0;
  for (let i = 0; i < dist.ids.length; i++) {
    cumulative += dist.probs[i];
    if (cumulative >= u) return dist.ids[i];
  }
  return dist.ids[dist.ids.length - 1]; // rounding left the total just below u
}
