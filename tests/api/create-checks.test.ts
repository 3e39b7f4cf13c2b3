/**
 * The cases issue 12 found accepted by the API and then failed by the worker: each is now settled at the door, as a
 * 400 at create or upload naming the field or the line, or (mini_batch_size "auto") resolved to a value the worker
 * runs. The rules are contract/*.json; tests/contract/ and gpu-worker/tests/test_contract_cases.py run the shared
 * case files through both languages, these tests the HTTP answers (src/routes/finetune/resolve-job.ts).
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';

let t: TestApp;
let api: ReturnType<typeof client>;
let fileId: string;
// The bundled tiny model's manifest: a 256-token context and its recommendations (mini_batch_size 16,
// max_response_tokens 96), on the test app's base model (whose tokenizer is the tiny model's).
const TINY = JSON.parse(readFileSync(new URL('../../models/tiny/manifest.json', import.meta.url), 'utf8'));
beforeEach(async () => {
  t = await makeTestApp();
  Object.assign(t.deps.config.baseModels[0].manifest, {
    context_length: TINY.context_length,
    recommended_hyperparameters: TINY.recommended_hyperparameters,
  });
  api = client(t.fetch, (await t.newTenant()).key);
  fileId = await upload(jsonl(...GOOD_LINES));
});
afterEach(() => t.close());

async function upload(content: string): Promise<string> {
  const res = await api.upload(content);
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

const create = (body: Record<string, unknown>) => api.post('/v1/finetune', { model: 'tiny-arith', training_file: fileId, ...body });
const withHp = (hyperparameters: Record<string, unknown>) => create({ method: { hyperparameters } });

async function rejected(res: Response, param: string, code: string, message?: RegExp) {
  const { error } = (await res.json()) as { error: { message: string; param: string | null; code: string } };
  expect({ status: res.status, param: error.param, code: error.code }, error.message).toEqual({ status: 400, param, code });
  if (message) expect(error.message).toMatch(message);
  expect(t.rows().jobs).toBe(0);
  return error;
}

const uploadRejected = async (content: string, message: RegExp) => {
  const res = await api.upload(content);
  const { error } = (await res.json()) as { error: { message: string; param: string; code: string } };
  expect({ status: res.status, param: error.param, code: error.code }).toEqual({ status: 400, param: 'file', code: 'invalid_jsonl' });
  expect(error.message).toMatch(message);
};

describe('hyperparameters are resolved and checked at create', () => {
  it('returns_and_stores_the_resolved_values_not_auto', async () => {
    const res = await create({});
    expect(res.status).toBe(200);
    const job = (await res.json()) as { id: string; method: { hyperparameters: Record<string, unknown> } };
    // the tiny model's manifest recommendations (models/tiny/manifest.json), then the contract's auto rules
    expect(job.method.hyperparameters).toMatchObject({
      batch_size: 16,
      mini_batch_size: 16,
      n_steps: 1,
      learning_rate: 5e-5,
      loss: 'soft_grpo_rb',
      max_response_tokens: 96,
      max_thinking_tokens: 80,
      clip_eps: 0.2,
      lora_alpha: 0,
      prompt_truncation: 'none',
    });
    expect(Object.values(job.method.hyperparameters)).not.toContain('auto');
    const stored = (await (await api.get(`/v1/finetune/${job.id}`)).json()) as typeof job;
    expect(stored.method.hyperparameters).toEqual(job.method.hyperparameters);
  });

  it('batch_size_2_with_auto_mini_batch_trains_with_mini_batch_2', async () => {
    // The manifest recommends mini_batch_size 16; the worker failed "mini_batch_size (16) must be <= batch_size (2)".
    // An explicit mini-batch over the batch is the user's to fix; an "auto" one is lowered to the batch.
    await rejected(await withHp({ batch_size: 2, mini_batch_size: 4 }), 'method.hyperparameters.mini_batch_size', 'invalid_combination');
    const res = await withHp({ batch_size: 2, mini_batch_size: 'auto' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).method.hyperparameters).toMatchObject({ batch_size: 2, mini_batch_size: 2 });
  });

  it('clip_eps_0_or_1_is_a_400_naming_clip_eps', async () => {
    for (const clip_eps of [0, 1])
      await rejected(await withHp({ clip_eps }), 'method.hyperparameters.clip_eps', 'invalid_value');
  });

  it('max_response_tokens_1000_on_a_256_token_model_is_a_400', async () => {
    await rejected(
      await withHp({ max_response_tokens: 1000 }),
      'method.hyperparameters.max_response_tokens',
      'invalid_combination',
      /256 tokens/,
    );
  });

  it('lora_alpha_follows_one_rule', async () => {
    // The API allowed (0, 1e6], the worker [0, inf): now 0 is a 400 exactly where it switches an adapter off.
    await rejected(await withHp({ lora_rank: 8, lora_alpha: 0 }), 'method.hyperparameters.lora_alpha', 'invalid_combination');
    expect((await withHp({ lora_rank: 0, lora_alpha: 0 })).status).toBe(200);
    const res = await withHp({ lora_rank: 8 });
    expect(((await res.json()) as any).method.hyperparameters.lora_alpha).toBe(16);
  });

  it('grpo_with_a_soft_loss_is_a_400_naming_loss', async () => {
    await rejected(
      await create({ method: { type: 'grpo', hyperparameters: { loss: 'soft_grpo' } } }),
      'method.hyperparameters.loss',
      'invalid_combination',
    );
  });
});

describe('dataset lines are checked alike at upload', () => {
  it('rejects_a_whitespace_only_prompt_naming_the_line', async () => {
    await uploadRejected(jsonl(GOOD_LINES[0], { prompt: ' \t\u3000\u0085', answer: 1 }), /^line 2: "prompt" must be a string that is not only whitespace/);
  });

  it('keeps_line_numbers_across_raw_u2028_u0085_and_cr', async () => {
    // Python's splitlines cut lines at these, so the worker named the wrong line.
    const lines = [JSON.stringify({ prompt: 'a\u2028b\u0085c', answer: 1 }), '{"prompt": "a",\r"answer": 1}', JSON.stringify({ prompt: 'no answer' })];
    await uploadRejected(lines.join('\n') + '\n', /^line 3: missing "answer"/);
    await uploadRejected('{"prompt": "a\rb", "answer": 1}\n', /^line 1: invalid JSON/);
    expect((await api.upload(lines.slice(0, 2).join('\r\n') + '\r\n')).status).toBe(200); // CRLF files are accepted
  });

  it('rejects_5000_deep_nesting_before_parsing', async () => {
    await uploadRejected(jsonl(GOOD_LINES[0], `{"prompt": "x", "answer": 1, "extra": ${'['.repeat(5000)}${']'.repeat(5000)}}`), /^line 2: nested deeper than 64 levels/);
  });

  it('rejects_a_lone_surrogate', async () => {
    await uploadRejected(jsonl('{"prompt": "x\\ud800", "answer": 1}'), /^line 1: has a lone surrogate/);
  });
});

describe('prompts must fit the model context at create', () => {
  // The tiny model's context is 256 tokens and it recommends max_response_tokens 96: at most 160 prompt tokens.
  const long = { prompt: `Add these numbers: ${Array.from({ length: 300 }, (_, i) => i % 10).join(' + ')}.`, answer: 1350 };

  it('rejects_a_prompt_longer_than_the_context_naming_the_line', async () => {
    // /v1/reason refused such a prompt while training accepted it.
    const id = await upload(jsonl(GOOD_LINES[0], long, GOOD_LINES[1], long));
    const error = await rejected(await create({ training_file: id }), 'training_file', 'prompt_too_long');
    expect(error.message).toMatch(/^training_file: 2 prompts do not fit .* at most 160 prompt tokens\): line 2 \(\d+ tokens\), line 4 \(\d+ tokens\)/);
    // a smaller response budget is not enough for these; the validation file is checked too
    await rejected(await create({ validation_file: id }), 'validation_file', 'prompt_too_long');
  });

  it('accepts_it_with_prompt_truncation_left', async () => {
    const id = await upload(jsonl(GOOD_LINES[0], long));
    const res = await create({ training_file: id, method: { hyperparameters: { prompt_truncation: 'left' } } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).method.hyperparameters.prompt_truncation).toBe('left');
  });

  it('counts_the_response_budget_the_job_resolves', async () => {
    const medium = { prompt: `Add: ${Array.from({ length: 70 }, (_, i) => i % 10).join('+')}`, answer: 1 };
    const id = await upload(jsonl(medium));
    await rejected(await create({ training_file: id, method: { hyperparameters: { max_response_tokens: 200 } } }), 'training_file', 'prompt_too_long');
    expect((await create({ training_file: id, method: { hyperparameters: { max_response_tokens: 64 } } })).status).toBe(200);
  });
});
