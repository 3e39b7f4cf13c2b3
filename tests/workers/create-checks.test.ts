/**
 * Job creation's contract checks inside the Workers runtime (src/routes/finetune/resolve-job.ts): "auto" is resolved
 * and stored, and prompts are rendered and tokenized with the base model's tokenizer read from R2, so a prompt too
 * long for the context is a 400 naming its line here as on Node (tests/api/create-checks.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { GOOD_LINES, client, jsonl } from '../helpers/http';
import { BASE, newTenant, workerFetch } from './harness';

async function setup() {
  const api = client(workerFetch, (await newTenant()).key, BASE);
  const upload = async (content: string) => ((await (await api.upload(content)).json()) as { id: string }).id;
  return { api, upload };
}

describe('create on Workers', () => {
  it('stores_and_returns_resolved_hyperparameters', async () => {
    const { api, upload } = await setup();
    const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: await upload(jsonl(...GOOD_LINES)) });
    expect(res.status).toBe(200);
    const job = (await res.json()) as { method: { hyperparameters: Record<string, unknown> } };
    // the test base model: context 512, recommends group_size 4
    expect(job.method.hyperparameters).toMatchObject({ batch_size: 2, group_size: 4, max_response_tokens: 256, prompt_truncation: 'none' });
  });

  it('rejects_a_prompt_longer_than_the_context_naming_its_line', async () => {
    const { api, upload } = await setup();
    const long = { prompt: Array.from({ length: 400 }, (_, i) => i % 10).join(' + '), answer: 1 };
    const fileId = await upload(jsonl(GOOD_LINES[0], long));
    const res = await api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId });
    const { error } = (await res.json()) as { error: { message: string; param: string; code: string } };
    expect({ status: res.status, param: error.param, code: error.code }).toEqual({ status: 400, param: 'training_file', code: 'prompt_too_long' });
    expect(error.message).toMatch(/: line 2 \(\d+ tokens\)/);
    const truncated = await api.post('/v1/finetune', {
      model: 'tiny-arith',
      training_file: fileId,
      method: { hyperparameters: { prompt_truncation: 'left' } },
    });
    expect(truncated.status).toBe(200);
  });
});
