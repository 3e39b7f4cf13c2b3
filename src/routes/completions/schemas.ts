/**
 * `POST /v1/completions` schemas: OpenAI's legacy completions as vLLM serves them (prompt as a string or a list of
 * strings, n, max_tokens, temperature, top_p, stop, seed, stream, logprobs as a count), over the same engine and
 * settings as chat (mode, soft_thinking, top_k, min_p as extensions). `echo`, `suffix` and `best_of` other than n
 * answer 400 naming the field, as do token-id prompts.
 */
import { z } from '@hono/zod-openapi';
import { CompletionUsage, ignoredFields, unsupportedCompletionFields } from '../../reasoning/openai-compat';
import { MAX_SAMPLES, MAX_SEED, SoftThinkingSettings, StopSequences, checkGreedy } from '../../reasoning/schemas';

export const MAX_PROMPTS = 16;
export const MAX_LOGPROBS = 20;

const PromptText = z.string().min(1).max(200_000);

export const CompletionRequest = z
  .object({
    model: z.string().min(1).max(256),
    prompt: z.union([PromptText, z.array(PromptText).min(1).max(MAX_PROMPTS)]).openapi({
      description:
        `A user message, or up to ${MAX_PROMPTS} of them (n choices each, prompt after prompt). Each is given to the ` +
        'model as one user turn of its chat template, since the model thinks before it answers; token-id prompts ' +
        'are not supported.',
    }),
    n: z.number().int().min(1).max(MAX_SAMPLES).default(1),
    stream: z.boolean().default(false),
    stream_options: z.object({ include_usage: z.boolean().default(false) }).nullable().optional(),
    max_tokens: z
      .number()
      .int()
      .min(1)
      .nullable()
      .optional()
      .openapi({ description: 'Generated tokens per choice, thinking included. Default: the rest of the context (not 16).' }),
    temperature: z.number().min(0).max(2).default(1).openapi({ description: '0 is greedy end to end, as in chat.' }),
    top_p: z.number().gt(0).max(1).default(0.95),
    top_k: z.number().int().min(0).max(1000).default(5),
    min_p: z.number().min(0).lt(1).default(0),
    seed: z.number().int().min(0).max(MAX_SEED).nullable().optional(),
    stop: StopSequences,
    logprobs: z
      .number()
      .int()
      .min(0)
      .max(MAX_LOGPROBS)
      .nullable()
      .optional()
      .openapi({ description: `Log-probabilities of the answer tokens and of the ${MAX_LOGPROBS} or fewer most likely alternatives.` }),
    best_of: z.number().int().min(1).nullable().optional().openapi({ description: 'Only equal to n (no ranking of samples).' }),
    mode: z.enum(['soft', 'discrete']).default('soft'),
    soft_thinking: SoftThinkingSettings.optional(),
    ...unsupportedCompletionFields,
    ...ignoredFields,
  })
  .strict()
  .superRefine((body, ctx) => {
    const prompts = typeof body.prompt === 'string' ? 1 : body.prompt.length;
    if (prompts * body.n > MAX_SAMPLES) {
      ctx.addIssue({ code: 'custom', path: ['n'], message: `prompts x n must be at most ${MAX_SAMPLES}, got ${prompts} x ${body.n}` });
    }
    if (body.best_of != null && body.best_of !== body.n) {
      ctx.addIssue({ code: 'custom', path: ['best_of'], message: 'not supported: only equal to n (samples are not ranked)' });
    }
    if (body.mode === 'discrete' && body.soft_thinking !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['soft_thinking'], message: 'soft_thinking does not apply to mode "discrete"' });
    }
    checkGreedy(body, ctx);
  })
  .openapi('CompletionRequest');
export type CompletionRequest = z.infer<typeof CompletionRequest>;

export const CompletionLogprobs = z
  .object({
    tokens: z.array(z.string()),
    token_logprobs: z.array(z.number()),
    top_logprobs: z.array(z.record(z.string(), z.number())),
    text_offset: z.array(z.number().int()),
  })
  .openapi('CompletionLogprobs', {
    description:
      'The answer tokens (eos excluded, the token that completed a stop string included), their log p under the ' +
      "model's raw distribution, the most likely alternatives with the chosen token, and character offsets in text.",
  });

export const Completion = z
  .object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.number().int(),
    model: z.string(),
    system_fingerprint: z.string().nullable(),
    seed: z.number().int().openapi({ description: 'The Philox seed used (the given one or a random one).' }),
    choices: z.array(
      z.object({
        index: z.number().int().openapi({ description: 'prompt index x n + sample index.' }),
        text: z.string().openapi({ description: 'The answer (after thinking).' }),
        reasoning_content: z.string().openapi({ description: 'The thinking text.' }),
        logprobs: CompletionLogprobs.nullable(),
        finish_reason: z.enum(['stop', 'length']),
      }),
    ),
    usage: CompletionUsage,
  })
  .openapi('Completion');
