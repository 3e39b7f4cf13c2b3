/**
 * A version-1 model.onnx (outputs present.*, the whole cache; docs/CONTRACTS.md "ONNX model"), as checkpoints written
 * before the engine kept the cache have, still serves: the engine reads each forward's new columns out of present,
 * its rows are not exact at every cache capacity (long rows round differently), so it decodes each request alone, and
 * its logits agree with the version-2 graph of the same weights.
 */
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { emptyCache } from '../../src/engine/kv-cache';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import type { GenerationRequest } from '../../src/engine/types';

const TINY = resolve(__dirname, '../../models/tiny');
let folder: string;
let v1: OnnxEngine;
let v2: OnnxEngine;
let warnings: string[] = [];

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'graph-v1-'));
  for (const name of readdirSync(TINY)) if (name.endsWith('.json')) copyFileSync(join(TINY, name), join(folder, name));
  copyFileSync(resolve(__dirname, '../fixtures/graph-v1/model.onnx'), join(folder, 'model.onnx'));
  const warn = vi.spyOn(console, 'warn').mockImplementation((message: string) => void warnings.push(message));
  try {
    v1 = await OnnxEngine.load(folder, { modelId: 'tiny-v1' });
  } finally {
    warn.mockRestore();
  }
  v2 = await OnnxEngine.load(TINY, { modelId: 'tiny', batching: false });
}, 60_000);

afterAll(async () => {
  await Promise.all([v1?.release(), v2?.release()]);
  rmSync(folder, { recursive: true, force: true });
});

describe('a version-1 graph', () => {
  it('is recognised by its outputs and decodes each request alone, saying why', () => {
    expect(v1.graphVersion).toBe(1);
    expect(v2.graphVersion).toBe(2);
    expect(v1.describeBatching().batching).toBe(false);
    expect(warnings.join('\n')).toMatch(/tiny-v1: model.onnx is a version-1 graph .* requests decode alone/);
  });

  it('returns the same fresh keys and logits as the version-2 graph, within float32 rounding', async () => {
    const prompt = [5, 17, 3, 99, 42, 7, 8];
    const ids = BigInt64Array.from(prompt, BigInt);
    const positions = [prompt.map((_, i) => i)];
    const [a, b] = await Promise.all([v1, v2].map((e) => e.forward(ids, new Float32Array(prompt.length).fill(1), [1, prompt.length, 1], emptyCache(e.geometry, 1), positions)));
    const close = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Math.abs(v - y[i]) <= 1e-5 * Math.max(1, Math.abs(y[i])));
    expect(close(a.logits, b.logits)).toBe(true);
    for (const name of Object.keys(b.fresh)) {
      expect(a.fresh[name].dims).toEqual(b.fresh[name].dims);
      expect(close(a.fresh[name].data as Float32Array, b.fresh[name].data as Float32Array)).toBe(true);
    }
    // one decode step on that cache: only the new column comes back from either graph
    const step = [v1, v2].map((e, i) => e.forward(BigInt64Array.from([11n]), Float32Array.from([1]), [1, 1, 1], [a, b][i].fresh, [[prompt.length]]));
    const [c, d] = await Promise.all(step);
    expect(c.fresh['past_key_values.0.key'].dims).toEqual([1, v1.geometry.numKvHeads, 1, v1.geometry.headDim]);
    expect(close(c.logits, d.logits)).toBe(true);
  });

  it('answers requests, the same answer every time', async () => {
    const request: GenerationRequest = {
      messages: [{ role: 'user', content: 'What is 3+4?' }],
      mode: 'soft',
      soft_thinking: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 3, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: 24, cold_stop: null },
      answer: { temperature: 0.9, top_k: 5, top_p: 0.95, min_p: 0 },
      max_tokens: 40,
      seed: 3,
      samples: [0, 1, 2],
    };
    const [first, second] = await Promise.all([v1.generate(request), v1.generate(request)]);
    expect(first.samples).toHaveLength(3);
    expect(first.samples.every((s) => s.token_ids.length > 0)).toBe(true);
    expect(second).toEqual(first);
  });
});
