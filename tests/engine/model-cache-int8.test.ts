/**
 * The model cache serves a folder's int8 variant where it has one (issue 17): model.int8.onnx (and its external data
 * under its own name) is fetched and loaded as model.onnx, the float32 export is not fetched, and the memory budget
 * counts the bytes of the graph that is served. Real local blob store; the loader records what it was given.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalBlobStore } from '../../src/adapters/local-blob-store';
import { ModelFolderCache, servedOnnxFiles, type LoadedEngine } from '../../src/engine/model-cache';
import type { ModelFileRef } from '../../src/engine/registry';

const work = mkdtempSync(join(tmpdir(), 'model-cache-int8-'));
const blobs = createLocalBlobStore(join(work, 'blobs'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function model(id: string, contents: Record<string, string>): Promise<{ id: string; base: string; files: ModelFileRef[] }> {
  const files: ModelFileRef[] = [];
  for (const [name, text] of Object.entries(contents)) {
    const key = `models/${id}/${name}`;
    const info = await blobs.put(key, new Response(text).body!);
    files.push({ name, key, bytes: info.size, sha256: info.sha256 });
  }
  return { id, base: id, files };
}

function cache(maxLoadedBytes: number, loaded: Array<{ id: string; folder: string; released: boolean }>) {
  return new ModelFolderCache({
    blobs,
    dir: join(work, 'cache'),
    maxLoaded: 10,
    maxLoadedBytes,
    load: async (folder, modelId) => {
      const entry = { id: modelId, folder, released: false };
      loaded.push(entry);
      const engine: LoadedEngine = {
        describe: () => ({ id: modelId, context_length: 16, engine: 'onnx' }),
        generate: async () => ({ samples: [] }) as never,
        release: async () => void (entry.released = true),
      };
      return engine;
    },
  });
}

const common = { 'config.json': '{}', 'tokenizer.json': '{}', 'tokenizer_config.json': '{}', 'manifest.json': '{}' };

describe('int8 where present', () => {
  it('picks_the_int8_graph_and_its_external_data', () => {
    expect(servedOnnxFiles(['model.onnx', 'model.onnx.data', 'model.int8.onnx', 'model.int8.onnx.data'])).toEqual({ graph: 'model.int8.onnx', files: ['model.int8.onnx', 'model.int8.onnx.data'] });
    expect(servedOnnxFiles(['model.onnx', 'model.onnx.data'])).toEqual({ graph: 'model.onnx', files: ['model.onnx', 'model.onnx.data'] });
    expect(servedOnnxFiles(['model.onnx'])).toEqual({ graph: 'model.onnx', files: ['model.onnx'] });
  });

  it('fetches_the_int8_variant_as_model_onnx_and_leaves_the_float32_export_behind', async () => {
    const loaded: Array<{ id: string; folder: string; released: boolean }> = [];
    const ref = await model('q8', { ...common, 'model.onnx': 'fp32 graph', 'model.onnx.data': 'fp32 weights', 'model.int8.onnx': 'int8 graph', 'model.int8.onnx.data': 'int8 weights' });
    await cache(1 << 20, loaded).engine(ref);
    const folder = loaded[0]!.folder;
    expect(readdirSync(folder).sort()).toEqual(['config.json', 'manifest.json', 'model.int8.onnx.data', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readFileSync(join(folder, 'model.onnx'), 'utf8')).toBe('int8 graph');
    expect(createHash('sha256').update(readFileSync(join(folder, 'model.int8.onnx.data'))).digest('hex')).toBe(ref.files.find((f) => f.name === 'model.int8.onnx.data')!.sha256);
  });

  it('counts_the_served_bytes_against_the_memory_budget_and_evicts_the_least_recently_used', async () => {
    const loaded: Array<{ id: string; folder: string; released: boolean }> = [];
    const big = 'x'.repeat(1000);
    // each model: 1000 bytes of float32 weights, 100 of int8; a budget of 250 bytes holds two int8 models
    const refs = await Promise.all(['a', 'b', 'c'].map((id) => model(`m-${id}`, { ...common, 'model.onnx': big, 'model.int8.onnx': 'y'.repeat(100) })));
    const c = cache(250, loaded);
    await c.engine(refs[0]!);
    await c.engine(refs[1]!);
    expect(c.loadedIds()).toEqual(['m-a', 'm-b']);
    await c.engine(refs[2]!);
    await new Promise((r) => setTimeout(r, 10));
    expect(c.loadedIds()).toEqual(['m-b', 'm-c']);
    expect(loaded.find((l) => l.id === 'm-a')!.released).toBe(true);
  });
});
