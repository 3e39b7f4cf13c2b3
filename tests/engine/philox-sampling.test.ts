import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { gumbel, philox4x32, seedKey, uniform } from "../../src/engine/philox";
import { discreteStep, filterLogits, softTokenStep } from "../../src/engine/sampling";

const M32 = 0xffffffff;
// Random123 kat_vectors.txt, philox4x32_10: counter, key, output
const RANDOM123_KAT: Array<[[number, number, number, number], [number, number], number[]]> = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [[M32, M32, M32, M32], [M32, M32], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

const vectors = JSON.parse(readFileSync(new URL("../vectors/philox.json", import.meta.url), "utf8"));

describe("philox4x32-10", () => {
  it.each(RANDOM123_KAT)("matches the Random123 known answer for counter %j", (counter, key, out) => {
    expect(philox4x32(key, counter)).toEqual(out);
  });

  it("matches every philox vector of the Python side", () => {
    expect(vectors.philox.length).toBeGreaterThan(0);
    for (const v of vectors.philox) expect(philox4x32(v.key, v.counter)).toEqual(v.out);
  });

  it("keys a seed above 2^32 by its two 32-bit halves", () => {
    expect(seedKey(2 ** 52 + 7)).toEqual([7, 2 ** 20]);
    expect(() => seedKey(2 ** 53)).toThrow(RangeError);
    expect(() => seedKey(-1)).toThrow(RangeError);
  });

  it("matches the Python uniforms and unclamped-then-clamped Gumbel noise", () => {
    for (const v of vectors.uniform) {
      const at = { seed: v.seed, sample: v.sample, step: v.step, slot: v.slot, stream: v.stream };
      expect(uniform(at)).toBeCloseTo(v.u, 7);
      expect(Math.abs(gumbel(at) - v.gumbel)).toBeLessThan(1e-5);
    }
  });

  it("draws each uniform from exactly the first word of philox4x32 (the allocation-free hot path)", () => {
    for (let i = 0; i < 2000; i++) {
      const at = { seed: (i * 2654435761) % 2 ** 53, sample: i % 37, step: (i * 7) % 5000, slot: i % 8, stream: i % 2 };
      const x0 = philox4x32(seedKey(at.seed), [at.slot, at.step, at.sample, at.stream])[0];
      expect(uniform(at)).toBe(Math.fround((x0 >>> 8) + 0.5) / 16777216);
    }
  });
});

describe("sampling rules", () => {
  it("matches every soft_step vector (ids, gp, weights, emitted, entropy)", () => {
    expect(vectors.soft_step.length).toBeGreaterThan(0);
    for (const v of vectors.soft_step) {
      const got = softTokenStep(v.logits, v.config, { seed: v.seed, sample: v.sample, step: v.step });
      expect(got.ids).toEqual(v.ids);
      expect(got.emitted).toBe(v.emitted);
      got.gp.forEach((x, i) => expect(Math.abs(x - v.gp[i])).toBeLessThan(1e-5));
      got.weights.forEach((x, i) => expect(Math.abs(x - v.weights[i])).toBeLessThan(1e-5));
      if (v.entropy !== undefined) expect(Math.abs(got.entropy - v.entropy)).toBeLessThan(1e-5);
    }
  });

  it("matches every discrete_step vector", () => {
    expect(vectors.discrete_step.length).toBeGreaterThan(0);
    for (const v of vectors.discrete_step) {
      const token = discreteStep(v.logits, v.config, { seed: v.seed, sample: v.sample, step: v.step });
      expect(token).toBe(v.token);
    }
  });

  it("keeps the shortest top_p prefix, breaks ties by lower id and applies min_p after renormalising", () => {
    const logits = [Math.log(0.1), Math.log(0.4), Math.log(0.4), Math.log(0.1)];
    const onlyTopP = filterLogits(logits, { temperature: 1, top_k: 0, top_p: 0.5, min_p: 0 });
    expect(Array.from(onlyTopP.ids)).toEqual([1, 2]);
    const topK = filterLogits(logits, { temperature: 1, top_k: 3, top_p: 1, min_p: 0 });
    expect(Array.from(topK.ids)).toEqual([1, 2, 0]);
    const minP = filterLogits(logits, { temperature: 1, top_k: 0, top_p: 1, min_p: 0.5 });
    expect(Array.from(minP.ids)).toEqual([1, 2]);
    expect(minP.probs[0]).toBeCloseTo(0.5, 12);
  });

  it("pads a soft step with the lowest removed ids when fewer than max_topk tokens survive", () => {
    const logits = [0, 0, 5, 0, 6];
    const step = softTokenStep(
      logits,
      { temperature: 1, top_k: 2, top_p: 1, min_p: 0, max_topk: 4, gumbel_tau: 0.1, noise_scale: 0 },
      { seed: 1, sample: 0, step: 0 },
    );
    expect(step.ids).toEqual([4, 2, 0, 1]);
    expect(step.emitted).toBe(4);
    expect(step.weights[2]).toBeLessThan(1e-30);
  });

  it("draws different discrete tokens for different samples of one seed but the same token for the same coordinates", () => {
    const logits = Array.from({ length: 50 }, () => 0);
    const settings = { temperature: 1, top_k: 0, top_p: 1, min_p: 0 };
    const tokens = Array.from({ length: 16 }, (_, sample) => discreteStep(logits, settings, { seed: 9, sample, step: 3 }));
    expect(new Set(tokens).size).toBeGreaterThan(4);
    expect(discreteStep(logits, settings, { seed: 9, sample: 5, step: 3 })).toBe(tokens[5]);
  });
});
