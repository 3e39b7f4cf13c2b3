/**
 * Fine-tune hyperparameters: every field of docs/CONTRACTS.md "Fine-tune hyperparameters", each accepting "auto"
 * (the default). The API stores them as given; the worker resolves "auto" (base model manifest's
 * `recommended_hyperparameters`, else the SOFT_GRPO.md defaults) and logs the resolved values as the first event.
 */
import { z } from '@hono/zod-openapi';
import { regexPattern } from '../common';

const auto = <T extends z.ZodTypeAny>(schema: T, description: string) =>
  z.union([z.literal('auto'), schema]).default('auto').openapi({ description: `${description} Default "auto".` });

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const positive = (max = 1e6) => z.number().gt(0).max(max);
const nonNegative = (max = 1e6) => z.number().min(0).max(max);

export const Hyperparameters = z
  .object({
    n_steps: auto(int(1, 1_000_000), 'RL steps. auto: ceil(train_size / batch_size).'),
    batch_size: auto(int(1, 4096), 'Prompts per RL step. auto: min(64, train_size).'),
    group_size: auto(int(2, 64), 'Rollouts per prompt (G). auto: 8.'),
    mini_batch_size: auto(int(1, 4096), 'Prompts per optimizer step. auto: ceil(batch_size / 2).'),
    ppo_epochs: auto(int(1, 8), 'auto: 1.'),
    learning_rate: auto(positive(1), 'auto: 1e-6.'),
    weight_decay: auto(nonNegative(10), 'auto: 0.01.'),
    grad_clip: auto(positive(1e6), 'auto: 1.0.'),
    clip_eps: auto(z.number().min(0).max(1), 'PPO clip epsilon in [0, 1]. auto: 0.2.'),
    dual_clip: auto(z.number().gt(1).max(1e6), 'Dual-clip constant > 1. auto: 3.0.'),
    kl_beta: auto(nonNegative(1e3), 'auto: 0.001.'),
    entropy_coef: auto(nonNegative(1e3), 'auto: 0.0.'),
    loss: auto(
      z.enum(['soft_grpo', 'soft_grpo_sum', 'soft_grpo_censored', 'soft_grpo_rb', 'soft_gaussian', 'grpo']),
      'Per-step log-probability (docs/CONTRACTS.md "Losses"). auto: the model manifest\'s recommendation, else ' +
        '"soft_grpo" for method soft_grpo, "grpo" for grpo.',
    ),
    temperature: auto(positive(100), 'Thinking-phase temperature. auto: 1.0.'),
    top_k: auto(int(0, 1_000_000), '0 = off. auto: 5.'),
    top_p: auto(z.number().gt(0).max(1), 'In (0, 1]. auto: 0.95.'),
    min_p: auto(z.number().min(0).lt(1), 'In [0, 1). auto: 0.0.'),
    max_topk: auto(int(1, 64), 'Mixed tokens k per soft token. auto: 5.'),
    gumbel_tau: auto(positive(100), 'auto: 0.1.'),
    noise_scale: auto(nonNegative(100), 'Gumbel noise scale lambda. auto: 1.0.'),
    embedding_noise: auto(
      nonNegative(100),
      'soft_gaussian: sigma of the input-embedding noise, as a multiple of the RMS of the embedding rows. auto: 0.3.',
    ),
    answer_temperature: auto(positive(100), 'Answer-phase temperature (> 0: RL needs a sampled answer). auto: the thinking temperature.'),
    answer_top_k: auto(int(0, 1_000_000), 'auto: the thinking top_k.'),
    answer_top_p: auto(z.number().gt(0).max(1), 'auto: the thinking top_p.'),
    max_response_tokens: auto(int(1, 1_048_576), 'auto: 8192 (capped by the model context).'),
    max_thinking_tokens: auto(int(1, 1_048_576), 'auto: max_response_tokens.'),
    cold_stop_entropy: auto(nonNegative(100).nullable(), 'null = off. auto: null.'),
    cold_stop_steps: auto(int(1, 1_048_576), 'auto: 256.'),
    lora_rank: auto(int(0, 4096), '0 = full fine-tuning. auto: 0.'),
    lora_alpha: auto(positive(1e6), 'auto: 2 * lora_rank.'),
    lora_dropout: auto(z.number().min(0).lt(1), 'auto: 0.0.'),
    eval_interval: auto(int(1, 1_000_000), 'auto: max(1, n_steps // 10).'),
    checkpoint_interval: auto(int(1, 1_000_000), 'auto: max(1, n_steps // 5); the final step is always checkpointed.'),
    eval_samples: auto(int(1, 1024), 'Samples per validation prompt. auto: 4.'),
  })
  .strict()
  .superRefine((h, ctx) => {
    if (typeof h.mini_batch_size === 'number' && typeof h.batch_size === 'number' && h.mini_batch_size > h.batch_size)
      ctx.addIssue({ code: 'custom', path: ['mini_batch_size'], message: 'must not exceed batch_size' });
    if (
      typeof h.max_thinking_tokens === 'number' &&
      typeof h.max_response_tokens === 'number' &&
      h.max_thinking_tokens > h.max_response_tokens
    )
      ctx.addIssue({ code: 'custom', path: ['max_thinking_tokens'], message: 'must not exceed max_response_tokens' });
  })
  .openapi('Hyperparameters');

export type HyperparametersInput = z.infer<typeof Hyperparameters>;

export const Method = z
  .object({
    type: z.enum(['soft_grpo', 'grpo']).default('soft_grpo'),
    hyperparameters: Hyperparameters.default(Hyperparameters.parse({})),
  })
  .strict()
  .superRefine((m, ctx) => {
    const loss = m.hyperparameters.loss;
    if (m.type === 'grpo' && typeof loss === 'string' && loss !== 'auto' && loss !== 'grpo')
      ctx.addIssue({ code: 'custom', path: ['hyperparameters', 'loss'], message: 'method "grpo" uses the "grpo" loss' });
  })
  .openapi('FineTuneMethod');

const scope = z
  .enum(['answer', 'response'])
  .default('answer')
  .openapi({
    description:
      'What is graded: "answer" = the text after </think> (default); "response" = the whole response, thinking ' +
      'included, as the SofT-GRPO reference reward does.',
  });

export const Grader = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('math'), scope }).strict(),
    z.object({ type: z.literal('exact'), scope }).strict(),
    z
      .object({
        type: z.literal('numeric'),
        scope,
        tolerance: z.number().min(0).max(1).default(1e-6).openapi({ description: 'Relative tolerance.' }),
      })
      .strict(),
    z
      .object({
        type: z.literal('regex'),
        scope,
        pattern: regexPattern('The answer text (or response, by scope) earns 1 when the pattern matches anywhere in it.'),
      })
      .strict(),
  ])
  .openapi('Grader', { description: 'How a rollout\'s final answer is scored against the line\'s "answer".' });
