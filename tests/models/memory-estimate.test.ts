/**
 * The memory estimate at job creation (src/models/memory-estimate.ts, constants in contract/model-sizes.json): the
 * recommendations model import writes for each size tier fit the default 80 GiB device at real model shapes, a job
 * that cannot fit is a 400 naming what to change, and the check runs at POST /v1/finetune on the base model's
 * config.json from the blob store (real SQLite, the bundled tiny model).
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import sizes from '../../contract/model-sizes.json';
import { checkJobMemory, DEFAULT_WORKER_DEVICE_MEMORY_BYTES, estimateJobMemory, parameterCount, type ModelShape } from '../../src/models/memory-estimate';
import { makeTestApp, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';

// config.json shapes of the published checkpoints (Hugging Face model cards)
const QWEN25_05B: ModelShape = { vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, head_dim: 64, tie_word_embeddings: true };
const QWEN25_MATH_15B: ModelShape = { vocab_size: 151936, hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, head_dim: 128, tie_word_embeddings: true };
const LLAMA32_3B: ModelShape = { vocab_size: 128256, hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, tie_word_embeddings: true };
const QWEN25_7B: ModelShape = { vocab_size: 152064, hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, head_dim: 128, tie_word_embeddings: false };

const tierOf = (params: number) => sizes.tiers.find((t) => t.max_parameters === null || params <= t.max_parameters)!;
const hpOf = (params: number) => ({ ...tierOf(params).recommended_hyperparameters });

describe('memory estimate', () => {
  it('counts_the_parameters_of_real_shapes', () => {
    // 494M (Qwen2.5-0.5B), 1.54B (Qwen2.5-Math-1.5B), 3.21B (Llama-3.2-3B), 7.6B (Qwen2.5-7B)
    expect(parameterCount(QWEN25_05B) / 1e6).toBeCloseTo(494.0, -1);
    expect(parameterCount(QWEN25_MATH_15B) / 1e9).toBeCloseTo(1.54, 1);
    expect(parameterCount(LLAMA32_3B) / 1e9).toBeCloseTo(3.21, 1);
    expect(parameterCount(QWEN25_7B) / 1e9).toBeCloseTo(7.6, 1);
  });

  it.each([
    ['Qwen2.5-0.5B', QWEN25_05B, 'small', 0],
    ['Qwen2.5-Math-1.5B', QWEN25_MATH_15B, 'medium', 32],
    ['Llama-3.2-3B', LLAMA32_3B, 'medium', 32],
    ['Qwen2.5-7B', QWEN25_7B, 'large', 64],
  ])('the_recommendation_for_%s_fits_one_80_GiB_device', (_name, shape, tier, rank) => {
    const params = parameterCount(shape);
    expect(tierOf(params).name).toBe(tier);
    const hp = hpOf(params);
    expect(hp.lora_rank).toBe(rank); // LoRA by default above the threshold
    expect(params > sizes.lora_threshold_parameters).toBe(rank > 0);
    const estimate = checkJobMemory(shape, hp, 1, 32768, DEFAULT_WORKER_DEVICE_MEMORY_BYTES);
    expect(estimate.bytes).toBeLessThan(DEFAULT_WORKER_DEVICE_MEMORY_BYTES);
  });

  it('names_lora_rank_when_full_fine_tuning_of_a_7B_model_cannot_fit', () => {
    const hp = { ...hpOf(parameterCount(QWEN25_7B)), lora_rank: 0, max_response_tokens: 512 };
    expect(() => checkJobMemory(QWEN25_7B, hp, 1, 32768, DEFAULT_WORKER_DEVICE_MEMORY_BYTES)).toThrow(
      /^hyperparameters\.lora_rank: the job needs an estimated \d+\.\d GiB per device \(weights .*\) but the workers' devices have 80\.0 GiB; set lora_rank/,
    );
    // sharded over enough devices with FSDP2 the weights and optimizer state fit
    const sharded = estimateJobMemory(QWEN25_7B, hp, 8, 32768);
    expect(sharded.parts.optimizer).toBeCloseTo(estimateJobMemory(QWEN25_7B, hp, 1, 32768).parts.optimizer / 8, 0);
  });

  it('names_mini_batch_size_when_the_logits_of_a_mini_batch_dominate', () => {
    const hp = { ...hpOf(parameterCount(QWEN25_05B)), mini_batch_size: 32, batch_size: 32 };
    try {
      checkJobMemory(QWEN25_05B, hp, 1, 32768, DEFAULT_WORKER_DEVICE_MEMORY_BYTES);
      expect.unreachable('a 256-row mini-batch over a 151936-token vocabulary does not fit 80 GiB');
    } catch (error) {
      expect((error as { opts: { param: string; code: string } }).opts).toEqual({ param: 'hyperparameters.mini_batch_size', code: 'job_too_large' });
      expect((error as Error).message).toMatch(/logits \d+\.\d GiB.*lower mini_batch_size/);
    }
  });
});

/** The bundled tiny model's real config.json as the test app's base model config (its own has no shape). */
async function putTinyConfig(app: TestApp) {
  const text = readFileSync(new URL('../../models/tiny/config.json', import.meta.url), 'utf8');
  await app.deps.blobs.put('models/tiny-arith/config.json', new Response(text).body!);
}

describe('POST /v1/finetune checks the estimate against the workers\' device memory', () => {
  let t: TestApp;
  afterEach(() => t?.close());

  it('answers_400_naming_the_field_and_creates_no_job', async () => {
    t = await makeTestApp({ config: { workerDeviceMemoryBytes: 1024 ** 2 } }); // a 1 MiB "device"
    await putTinyConfig(t);
    const api = client(t.fetch, (await t.newTenant()).key);
    const file = ((await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
    const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: file, method: { hyperparameters: { batch_size: 2, mini_batch_size: 2, group_size: 2, max_response_tokens: 32 } } });
    const { error } = (await res.json()) as { error: { message: string; param: string; code: string } };
    expect({ status: res.status, code: error.code }, error.message).toEqual({ status: 400, code: 'job_too_large' });
    expect(error.param).toMatch(/^hyperparameters\./);
    expect(error.message).toContain("but the workers' devices have 0.0 GiB");
    expect(t.rows().jobs).toBe(0);
    // the same job fits the default device
    const ok = await makeTestApp();
    await putTinyConfig(ok);
    try {
      const api2 = client(ok.fetch, (await ok.newTenant()).key);
      const file2 = ((await (await api2.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
      const created = await api2.post('/v1/finetune', { model: 'tiny-arith', training_file: file2, method: { hyperparameters: { batch_size: 2, mini_batch_size: 2, group_size: 2, max_response_tokens: 32 } } });
      expect(created.status, await created.clone().text()).toBe(200);
    } finally {
      await ok.close();
    }
  });
});
