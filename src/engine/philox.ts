/**
 * Philox4x32-10 counter-based random numbers (Random123 / Triton `tl.philox`), the contract of docs/CONTRACTS.md.
 *
 * Every random number the sampler draws is a pure function of (seed, sample, step, slot, stream), so the Node engine,
 * the PyTorch rollout and the Triton kernel draw the same noise for the same coordinates, in any batch order.
 *
 *   key     = (seed & 0xffffffff, floor(seed / 2^32) & 0xffffffff)      seed an integer in [0, 2^53)
 *   counter = (c0 = slot, c1 = step, c2 = sample, c3 = stream)
 *   u       = fround((x0 >>> 8) + 0.5) / 2^24                          in (0, 1)
 *   g       = -log(-log(u)), clamped to [-1.5, 3] unless clamp = false (tests only)
 *
 * `(x0 >>> 8) + 0.5` needs 25 bits; the Python and Triton sides compute it in float32, which rounds to nearest even,
 * so it is rounded to float32 here too (Math.fround) and the uniforms agree bit for bit.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const ROUNDS = 10;
const TWO_POW_32 = 4294967296;
const MAX_SEED = 2 ** 53;

export const STREAM_GUMBEL = 0;
export const STREAM_DISCRETE = 1;
export const GUMBEL_MIN = -1.5;
export const GUMBEL_MAX = 3;

/** High and low 32-bit words of a * b for uint32 a, b, exact in float64 (each partial product is below 2^48). */
function mulhilo(a: number, b: number): [number, number] {
  return [mulhi(a, b), Math.imul(a, b) >>> 0];
}

function mulhi(a: number, b: number): number {
  const productLo = a * (b & 0xffff);
  const productHi = a * (b >>> 16);
  return Math.floor((productHi + Math.floor(productLo / 65536)) / 65536) >>> 0;
}

/** Philox4x32-10 of one counter under one key; all words are uint32 numbers. */
export function philox4x32(key: readonly [number, number], counter: readonly [number, number, number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((c) => c >>> 0);
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < ROUNDS; round++) {
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/**
 * The first output word of philox4x32 for key (k0, k1) and counter (c0..c3): the same rounds without the arrays,
 * for the sampler's hot path (every soft step draws k of these).
 */
function philoxFirstWord(k0: number, k1: number, c0: number, c1: number, c2: number, c3: number): number {
  for (let round = 0; round < ROUNDS; round++) {
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return c0;
}

/** The Philox key of an integer seed in [0, 2^53). */
export function seedKey(seed: number): [number, number] {
  if (!Number.isInteger(seed) || seed < 0 || seed >= MAX_SEED) {
    throw new RangeError(`seed must be an integer in [0, 2^53), got ${seed}`);
  }
  return [seed % TWO_POW_32 >>> 0, Math.floor(seed / TWO_POW_32) >>> 0];
}

export interface NoiseCoordinates {
  seed: number;
  sample: number;
  step: number;
  slot: number;
  stream: number;
}

/** A uniform in (0, 1) for one (seed, sample, step, slot, stream) coordinate. */
export function uniform({ seed, sample, step, slot, stream }: NoiseCoordinates): number {
  return uniformAt(seed, sample, step, slot, stream);
}

/** uniform() with the coordinates as arguments (no object to build on the hot path). */
export function uniformAt(seed: number, sample: number, step: number, slot: number, stream: number): number {
  const [k0, k1] = seedKey(seed);
  const x0 = philoxFirstWord(k0, k1, slot >>> 0, step >>> 0, sample >>> 0, stream >>> 0);
  return Math.fround((x0 >>> 8) + 0.5) / 16777216;
}

/** Gumbel(0, 1) noise -log(-log(u)), clamped to [-1.5, 3] unless clamp is false (tests only). */
export function gumbel(coordinates: NoiseCoordinates, clamp = true): number {
  const { seed, sample, step, slot, stream } = coordinates;
  return gumbelAt(seed, sample, step, slot, stream, clamp);
}

/** gumbel() with the coordinates as arguments. */
export function gumbelAt(seed: number, sample: number, step: number, slot: number, stream: number, clamp = true): number {
  const g = -Math.log(-Math.log(uniformAt(seed, sample, step, slot, stream)));
  return clamp ? Math.min(GUMBEL_MAX, Math.max(GUMBEL_MIN, g)) : g;
}
