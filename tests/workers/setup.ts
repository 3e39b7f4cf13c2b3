/**
 * Runs in workerd before each Workers test file: applies migrations/ (read in Node by vitest.workers.config.ts)
 * to the test D1 database, and uploads the base model that wrangler.toml's BASE_MODELS names ("tiny-arith") to
 * the test R2 bucket, the way a deployment does (src/entry/worker-models.ts). Both steps are idempotent.
 */
import { applyD1Migrations, env } from 'cloudflare:test';

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

const prefix = 'models/tiny-arith/';
if (!(await env.BLOBS.head(`${prefix}manifest.json`))) {
  const config = JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(config));
  const configSha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  await env.BLOBS.put(`${prefix}config.json`, config);
  // The real tiny tokenizer (read by vitest.workers.config.ts): job creation tokenizes training prompts with it.
  await env.BLOBS.put(`${prefix}tokenizer.json`, env.TEST_TOKENIZER_JSON);
  await env.BLOBS.put(`${prefix}tokenizer_config.json`, env.TEST_TOKENIZER_CONFIG_JSON);
  await env.BLOBS.put(
    `${prefix}manifest.json`,
    JSON.stringify({
      format: 'softgrpo-model/1',
      base: 'tiny-arith',
      step: 0,
      context_length: 512,
      files: { 'config.json': configSha },
      recommended_hyperparameters: { group_size: 4 },
    }),
  );
}
