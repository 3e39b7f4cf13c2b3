/**
 * The Node engine registry (src/engine/node-engines.ts): onnx models are served from worker threads unless their
 * pool size is 0 (on the API thread, for comparisons); max_batch_rows and batching reach the engine; ENGINE_MODELS
 * validates pool_size and max_batch_rows.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNodeEngineRegistry, parseEngineModels } from '../../src/engine/node-engines';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import { ThreadedEngine } from '../../src/engine/threaded-engine';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');

describe('createNodeEngineRegistry', () => {
  it('serves_configured_onnx_models_from_worker_threads_and_pool_size_0_on_the_api_thread', async () => {
    const registry = createNodeEngineRegistry({
      models: { threaded: { engine: 'onnx', folder: FOLDER, pool_size: 1 }, inline: { engine: 'onnx', folder: FOLDER, pool_size: 0 } },
    });
    const threaded = await registry.get('threaded');
    const inline = await registry.get('inline');
    try {
      expect(threaded).toBeInstanceOf(ThreadedEngine);
      expect(inline).toBeInstanceOf(OnnxEngine);
      expect(threaded!.describe()).toEqual({ ...inline!.describe(), id: 'threaded' });
      expect(await (threaded as ThreadedEngine).threads()).toHaveLength(1);
    } finally {
      await (threaded as ThreadedEngine).release();
      await (inline as OnnxEngine).release();
    }
  }, 60_000);

  it('passes_max_batch_rows_and_batching_to_the_engine', async () => {
    const registry = createNodeEngineRegistry({
      models: {
        capped: { engine: 'onnx', folder: FOLDER, pool_size: 0, max_batch_rows: 5 },
        unbatched: { engine: 'onnx', folder: FOLDER, pool_size: 0, batching: false },
      },
    });
    const capped = (await registry.get('capped')) as OnnxEngine;
    const unbatched = (await registry.get('unbatched')) as OnnxEngine;
    try {
      expect(capped.describeBatching()).toMatchObject({ batching: true, maxRows: 5 });
      expect(unbatched.describeBatching()).toMatchObject({ batching: false });
    } finally {
      await Promise.all([capped.release(), unbatched.release()]);
    }
  }, 60_000);
});

describe('parseEngineModels', () => {
  it('accepts_a_pool_size_and_names_the_model_of_a_bad_one', () => {
    expect(parseEngineModels('{"m": {"engine": "onnx", "folder": "x", "pool_size": 3}}').m).toMatchObject({ pool_size: 3 });
    expect(() => parseEngineModels('{"m": {"engine": "onnx", "folder": "x", "pool_size": -1}}')).toThrow(/ENGINE_MODELS: m\.pool_size/);
    expect(parseEngineModels('{"m": {"engine": "onnx", "folder": "x", "max_batch_rows": 16}}').m).toMatchObject({ max_batch_rows: 16 });
    expect(() => parseEngineModels('{"m": {"engine": "onnx", "folder": "x", "max_batch_rows": 0}}')).toThrow(/ENGINE_MODELS: m\.max_batch_rows/);
  });
});
