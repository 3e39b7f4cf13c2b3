/**
 * The blob-backed model cache with the real local blob store and real ONNX sessions of the tiny model
 * (models/tiny, or TINY_MODEL_DIR): verified downloads, one load per model, LRU release within the bounds.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBlobStore } from '../../src/adapters/local-blob-store';
import { ModelFolderCache, OPTIONAL_SERVING_FILES, SERVING_FILES, type LoadedEngine } from '../../src/engine/model-cache';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import type { ModelFileRef } from '../../src/engine/registry';
import type { GenerationRequest } from '../../src/engine/types';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');
const work = mkdtempSync(join(tmpdir(), 'model-cache-'));
const blobs = createLocalBlobStore(join(work, 'blobs'));
let files: ModelFileRef[];

const REQUEST: GenerationRequest = {
  messages: [{ role: 'user', content: 'Tom has 4 pens. He buys 2 more. How many pens does Tom have now?' }],
  mode: 'soft',
  soft_thinking: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: 8, cold_stop: null },
  answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 },
  max_tokens: 12,
  seed: 1,
  samples: [0],
};

beforeAll(async () => {
  files = [];
  for (const name of [...SERVING_FILES, ...OPTIONAL_SERVING_FILES]) {
    let content: Buffer;
    try {
      content = readFileSync(join(FOLDER, name));
    } catch {
      continue;
    }
    const key = `checkpoints/job-1/step-1/${name}`;
    await blobs.put(key, new Blob([content as BlobPart]).stream());
    files.push({ name, bytes: content.length, sha256: createHash('sha256').update(content).digest('hex'), key });
  }
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function trackingCache(dir: string, bounds: { maxLoaded: number; maxLoadedBytes: number }) {
  const loads: string[] = [];
  const releases: string[] = [];
  const cache = new ModelFolderCache({
    blobs,
    dir,
    ...bounds,
    load: async (folder, modelId): Promise<LoadedEngine> => {
      loads.push(modelId);
      const engine = await OnnxEngine.load(folder, { modelId });
      return Object.assign(engine, {
        release: async () => {
          releases.push(modelId);
          await engine.session.release();
        },
      });
    },
  });
  return { cache, loads, releases };
}

describe('ModelFolderCache', () => {
  it('downloads a checkpoint once, verifies it and serves the same tokens as the original folder', async () => {
    const { cache, loads } = trackingCache(join(work, 'cache-a'), { maxLoaded: 2, maxLoadedBytes: 1e12 });
    const ref = { id: 'ft:tiny-arith::job-1', base: 'tiny-arith', files };
    const [a, b] = await Promise.all([cache.engine(ref), cache.engine(ref)]);
    expect(loads).toEqual(['ft:tiny-arith::job-1']);
    const direct = await OnnxEngine.load(FOLDER, { modelId: 'direct' });
    const viaCache = await a.generate(REQUEST);
    expect(viaCache.samples[0].token_ids).toEqual((await direct.generate(REQUEST)).samples[0].token_ids);
    expect((await b.generate(REQUEST)).samples[0].token_ids).toEqual(viaCache.samples[0].token_ids);
    await direct.release();
  }, 60_000);

  it('rejects a blob whose content does not match the registered sha256 and leaves no file behind', async () => {
    const { cache, loads } = trackingCache(join(work, 'cache-b'), { maxLoaded: 2, maxLoadedBytes: 1e12 });
    const tampered = files.map((f) => (f.name === 'model.onnx' ? { ...f, sha256: '0'.repeat(64) } : f));
    await expect(cache.engine({ id: 'ft:bad', base: 'tiny-arith', files: tampered })).rejects.toThrow(/sha256/);
    expect(loads).toEqual([]);
    const leftovers = readdirSync(join(work, 'cache-b'), { recursive: true }) as string[];
    expect(leftovers.filter((f) => f.includes('model.onnx'))).toEqual([]);
    expect(cache.loadedIds()).toEqual([]);
  }, 60_000);

  it('releases the least recently used session beyond maxLoaded, after its in-flight request finishes', async () => {
    const { cache, loads, releases } = trackingCache(join(work, 'cache-c'), { maxLoaded: 2, maxLoadedBytes: 1e12 });
    const ref = (id: string) => ({ id, base: 'tiny-arith', files });
    const first = await cache.engine(ref('m1'));
    await cache.engine(ref('m2'));
    await cache.engine(ref('m1')); // m1 is now more recently used than m2
    await cache.engine(ref('m3'));
    expect(cache.loadedIds().sort()).toEqual(['m1', 'm3']);
    await new Promise((r) => setTimeout(r, 10));
    expect(releases).toEqual(['m2']);
    await cache.engine(ref('m3'));
    const running = first.generate({ ...REQUEST, max_tokens: 40 }); // m1 busy ...
    const loading = cache.engine(ref('m4')); // ... when it becomes the least recently used and is evicted
    expect(cache.loadedIds().sort()).toEqual(['m3', 'm4']);
    await new Promise((r) => setImmediate(r));
    expect(releases).toEqual(['m2']);
    const result = await running;
    await loading;
    expect(result.samples[0].token_ids.length).toBeGreaterThan(0);
    expect(releases).toEqual(['m2', 'm1']);
    expect(loads).toEqual(['m1', 'm2', 'm3', 'm4']);
  }, 60_000);

  it('bounds the loaded bytes as well as the count', async () => {
    const onnxBytes = files.filter((f) => f.name.startsWith('model.onnx')).reduce((s, f) => s + f.bytes, 0);
    const { cache, releases } = trackingCache(join(work, 'cache-d'), { maxLoaded: 10, maxLoadedBytes: onnxBytes * 1.5 });
    await cache.engine({ id: 'x', base: 'tiny-arith', files });
    await cache.engine({ id: 'y', base: 'tiny-arith', files });
    expect(cache.loadedIds()).toEqual(['y']);
    await new Promise((r) => setTimeout(r, 10));
    expect(releases).toEqual(['x']);
  }, 60_000);
});
