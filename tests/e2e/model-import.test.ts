/**
 * Bring your own model, end to end on CPU (issue 17): random-weight Hugging Face folders saved by transformers at
 * the real Qwen2 and Llama architectures (shrunk; gpu-worker/tests/hf_fixture.py) -> `npm run import-model` into a
 * MODELS_DIR -> the `npm start` stack serves them on /v1/reason (the Qwen2 one in int8) -> a 2-step soft_grpo job on
 * the imported Qwen2 -> its checkpoint answers /v1/reason; a tenant uploads an imported folder through signed URLs
 * (/v1/model_uploads) and reasons with it. A folder that cannot be imported exits 2 naming the file.
 *
 *   npx vitest run tests/e2e/model-import.test.ts          (E2E_VERBOSE=1 prints the stack's output)
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, ROOT } from '../../scripts/start-stack';
import { dataLines, startE2E, watchUntilDone, type E2E } from './stack';

const work = mkdtempSync(join(tmpdir(), 'e2e-import-'));
const modelsDir = join(work, 'models');
let e2e: E2E;

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 32 << 20 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
const importModel = (args: string[]) => run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/import-model.ts'), ...args]);
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(async () => {
  for (const [name, flags] of [
    ['qwen2-hf', ['--arch', 'qwen2', '--shard-kb', '60', '--dtype', 'bfloat16']],
    ['llama-hf', ['--arch', 'llama', '--untied', '--no-think-tokens']],
  ] as const) {
    const built = run(PYTHON, [join(ROOT, 'gpu-worker/tests/hf_fixture.py'), join(work, name), ...flags]);
    if (built.status !== 0) throw new Error(built.stderr);
  }
  const qwen = importModel([join(work, 'qwen2-hf'), '--out', join(modelsDir, 'qwen2-tiny'), '--int8']);
  expect(qwen.status, qwen.stderr).toBe(0);
  const llama = importModel([join(work, 'llama-hf'), '--out', join(modelsDir, 'llama-tiny'), '--add-think-tokens']);
  expect(llama.status, llama.stderr).toBe(0);
  e2e = await startE2E({ SWEEP_SECONDS: '1' }, modelsDir);
}, 600_000);

afterAll(async () => {
  await e2e?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('imported Hugging Face models', () => {
  it('rejects_a_folder_it_cannot_import_naming_the_file', () => {
    const bad = join(work, 'bad');
    run('cp', ['-r', join(work, 'llama-hf'), bad]);
    const config = JSON.parse(readFileSync(join(bad, 'config.json'), 'utf8'));
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...config, model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'] }));
    const result = importModel([bad, '--out', join(work, 'never')]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("config.json: model_type 'gemma2' (Gemma2ForCausalLM) is not supported; supported: qwen2 (Qwen2ForCausalLM), llama (LlamaForCausalLM)");
    expect(result.stderr).toContain("tokenizer.json: no single token '<think>' / '</think>'");
    expect(readdirSync(work)).not.toContain('never');
  }, 180_000);

  it('serves_both_imported_models_on_reason_the_qwen2_one_in_int8', async () => {
    const listed = (await e2e.api('GET', '/v1/models')).body.data.map((m: any) => m.id);
    expect(listed).toEqual(expect.arrayContaining(['qwen2-tiny', 'llama-tiny']));
    for (const model of ['qwen2-tiny', 'llama-tiny']) {
      const res = await e2e.api('POST', '/v1/reason', { model, prompt: 'What is 2 + 3?', n: 2, seed: 3, max_tokens: 12 });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.model).toBe(model);
      expect(res.body.choices).toHaveLength(2);
      expect(res.body.choices[0].usage?.completion_tokens ?? res.body.usage.completion_tokens).toBeGreaterThan(0);
    }
    // the engine cache holds the int8 graph of qwen2-tiny under the name it loads (model.onnx)
    const cacheDir = join(e2e.dataDir, 'model-cache');
    const served = readdirSync(cacheDir).map((d) => join(cacheDir, d, 'model.onnx')).filter((p) => { try { return readFileSync(p).length > 0; } catch { return false; } }).map(sha256);
    expect(served).toContain(sha256(join(modelsDir, 'qwen2-tiny', 'model.int8.onnx')));
    expect(served).toContain(sha256(join(modelsDir, 'llama-tiny', 'model.onnx')));
  }, 120_000);

  it('serves_a_model_folder_a_tenant_uploads_through_signed_urls', async () => {
    const folder = join(modelsDir, 'llama-tiny');
    const names = readdirSync(folder).filter((n) => n !== 'data');
    const files = names.map((name) => ({ name, bytes: readFileSync(join(folder, name)).length, sha256: sha256(join(folder, name)) }));
    const started = await e2e.api('POST', '/v1/model_uploads', { id: 'my-llama', files });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    for (const { name, url } of started.body.upload_urls as { name: string; url: string }[]) {
      const put = await fetch(url, { method: 'PUT', body: readFileSync(join(folder, name)) });
      expect(put.status, await put.text()).toBe(200);
    }
    const done = await e2e.api('POST', '/v1/model_uploads/my-llama/complete');
    expect(done.body).toMatchObject({ id: 'my-llama', status: 'ready' });
    const res = await e2e.api('POST', '/v1/reason', { model: 'my-llama', prompt: 'What is 1 + 6?', n: 1, seed: 2, max_tokens: 8 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.model).toBe('my-llama');
  }, 120_000);

  it('fine_tunes_the_imported_qwen2_two_steps_and_the_checkpoint_answers', async () => {
    const trainingFile = await e2e.upload(dataLines('train', 4));
    const created = await e2e.api('POST', '/v1/finetune', {
      model: 'qwen2-tiny',
      training_file: trainingFile,
      method: {
        type: 'soft_grpo',
        hyperparameters: { n_steps: 2, batch_size: 2, group_size: 2, mini_batch_size: 1, max_response_tokens: 16, max_thinking_tokens: 12, learning_rate: 1e-5, eval_samples: 1, checkpoint_interval: 2, eval_interval: 2 },
      },
      grader: { type: 'math' },
      seed: 5,
      suffix: 'imported',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const { status, events } = await watchUntilDone(e2e, created.body.id, 400_000);
    expect(status, JSON.stringify(events.slice(-3))).toBe('succeeded');
    const done = (await e2e.api('GET', `/v1/finetune/${created.body.id}`)).body;
    expect(done.trained_steps).toBe(2);
    expect(done.fine_tuned_model).toBe(`ft:qwen2-tiny:imported:${created.body.id}`);
    // the manifest's recommendation for a small model: full fine-tuning (LoRA only above the size threshold)
    expect(done.hyperparameters.lora_rank).toBe(0);
    const reason = await e2e.api('POST', '/v1/reason', { model: done.fine_tuned_model, prompt: 'What is 4 + 4?', n: 2, seed: 9, max_tokens: 12 });
    expect(reason.status, JSON.stringify(reason.body)).toBe(200);
    expect(reason.body.model).toBe(done.fine_tuned_model);
    expect(reason.body.choices).toHaveLength(2);
  }, 500_000);
});
