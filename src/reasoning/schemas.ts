/**
 * Zod schemas of `POST /v1/reason` (whose sampling and voting settings /v1/chat/completions shares, so they live here,
 * beside the plan that runs them, rather than in either route folder): the request (with the checks that need several fields: exactly one of
 * messages / prompt, no soft_thinking in discrete mode, a pattern exactly for regex extraction) and the response.
 * Defaults are the SofT-GRPO rollout settings (SOFT_GRPO.md s.1), so a model is queried the way it was trained.
 */
import { z } from '@hono/zod-openapi';
import { regexPattern } from '../routes/common';
import { ChatMessage } from './messages';

export const MAX_SAMPLES = 64;
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

const temperature = (min: 'zero' | 'positive') =>
  (min === 'zero' ? z.number().min(0) : z.number().gt(0)).max(100);
const topK = z.number().int().min(0).max(1000).openapi({ description: 'Keep the k most likely tokens (0 = off).' });
const topP = z.number().gt(0).max(1).openapi({ description: 'Nucleus: the shortest prefix reaching this mass (1 = off).' });
const minP = z.number().min(0).lt(1).openapi({ description: 'Drop tokens below min_p * max p (0 = off).' });

export const SoftThinkingSettings = z
  .object({
    temperature: temperature('positive').default(1).openapi({ description: 'Thinking-phase temperature tau.' }),
    top_k: topK.default(5),
    top_p: topP.default(0.95),
    min_p: minP.default(0),
    max_topk: z.number().int().min(1).max(64).default(5).openapi({ description: 'k: tokens mixed per soft step.' }),
    gumbel_tau: z.number().gt(0).max(100).default(0.1).openapi({ description: 'Gumbel-softmax temperature of the mixture weights.' }),
    noise_scale: z
      .number()
      .min(0)
      .max(100)
      .optional()
      .openapi({
        description:
          'Gumbel noise scale lambda; 0 = plain Soft Thinking (deterministic thinking). Default 1, and 0 with ' +
          '`temperature: 0` (greedy end to end), which allows no other value.',
      }),
    max_thinking_tokens: z
      .number()
      .int()
      .min(1)
      .optional()
      .openapi({ description: 'Thinking steps before </think> is forced. Default: max_tokens.' }),
    cold_stop: z
      .object({
        entropy: z.number().min(0).openapi({ description: 'Entropy threshold of the filtered distribution.' }),
        steps: z.number().int().min(1).default(256).openapi({ description: 'Consecutive low-entropy steps that end thinking.' }),
      })
      .strict()
      .nullable()
      .default(null),
  })
  .strict()
  .openapi('SoftThinkingSettings');

export const VoteSettings = z
  .object({
    method: z.literal('majority').default('majority'),
    extract: z.enum(['boxed', 'last_number', 'regex']).default('boxed'),
    normalize: z.enum(['math', 'exact']).default('math'),
    pattern: regexPattern('For extract "regex": the first group (or the whole match) of the last match is the answer.').optional(),
    adaptive: z
      .boolean()
      .default(false)
      .openapi({ description: 'Sample in batches and stop once the leading answer cannot be overtaken.' }),
    adaptive_batch_size: z.number().int().min(1).max(MAX_SAMPLES).default(4),
  })
  .strict()
  .openapi('VoteSettings');

/** OpenAI's `stop`: one string or up to 4; null = none. */
export const StopSequences = z
  .union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)])
  .nullable()
  .optional()
  .openapi({
    description:
      'Up to 4 strings: the answer ends where one first appears (the text is cut before it, finish_reason "stop"). ' +
      'Only the answer phase is cut: thinking steps are soft mixtures, not final text.',
  });

/** The stop strings as a list (none: []). */
export const stopList = (stop: string | string[] | null | undefined): string[] =>
  stop == null ? [] : typeof stop === 'string' ? [stop] : stop;

/**
 * `temperature: 0` is greedy end to end: the answer takes the argmax and thinking draws no Gumbel noise (plain Soft
 * Thinking), so a noise_scale other than 0 contradicts it. Shared by the request schemas of reason, chat, completions.
 */
export function checkGreedy(
  body: { temperature: number; soft_thinking?: { noise_scale?: number } },
  ctx: z.RefinementCtx,
): void {
  const noise = body.soft_thinking?.noise_scale;
  if (body.temperature === 0 && noise !== undefined && noise !== 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['soft_thinking', 'noise_scale'],
      message: 'must be 0 (or left out) with temperature 0, which is greedy end to end',
    });
  }
}

const samplingFields = {
  n: z.number().int().min(1).max(MAX_SAMPLES).default(1).openapi({ description: `Samples (1-${MAX_SAMPLES}).` }),
  max_tokens: z
    .number()
    .int()
    .min(1)
    .optional()
    .openapi({ description: 'Generated tokens per sample (thinking + answer). Default: the rest of the context.' }),
  temperature: temperature('zero')
    .default(1)
    .openapi({ description: 'Answer-phase temperature; 0 = greedy end to end (argmax answer, thinking without noise).' }),
  top_k: topK.default(5),
  top_p: topP.default(0.95),
  min_p: minP.default(0),
  stop: StopSequences,
  seed: z
    .number()
    .int()
    .min(0)
    .max(MAX_SEED)
    .optional()
    .openapi({ description: 'Philox seed: the same seed, model and settings give the same samples. Default: random.' }),
  stream: z.boolean().default(false),
};

export const ReasonRequest = z
  .object({
    model: z.string().min(1).max(256).openapi({ example: 'tiny-arith' }),
    messages: z.array(ChatMessage).min(1).max(256).optional(),
    prompt: z.string().min(1).max(200_000).optional().openapi({ description: 'A single user message (instead of messages).' }),
    mode: z.enum(['soft', 'discrete']).default('soft').openapi({ description: 'discrete: ordinary token sampling throughout.' }),
    soft_thinking: SoftThinkingSettings.optional(),
    vote: VoteSettings.optional(),
    soft_thoughts: z
      .boolean()
      .optional()
      .openapi({
        description:
          'Soft mode only, off by default: each choice gets `soft_thoughts`, one entry per thinking step, with the k ' +
          'token ids mixed into the model\'s input, their text and their mixture weights. Only the in-process (ONNX) ' +
          'engine records them: a model served by a remote engine answers 400.',
      }),
    ...samplingFields,
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.soft_thoughts && body.mode === 'discrete') {
      ctx.addIssue({ code: 'custom', path: ['soft_thoughts'], message: 'soft thoughts exist only in mode "soft"' });
    }
    if ((body.messages === undefined) === (body.prompt === undefined)) {
      ctx.addIssue({ code: 'custom', path: [body.messages ? 'prompt' : 'messages'], message: 'give exactly one of messages or prompt' });
    }
    if (body.mode === 'discrete' && body.soft_thinking !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['soft_thinking'], message: 'soft_thinking does not apply to mode "discrete"' });
    }
    const vote = body.vote;
    if (vote && (vote.extract === 'regex') !== (vote.pattern !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['vote', 'pattern'], message: 'a pattern is required with extract "regex", and only then' });
    }
    checkGreedy(body, ctx);
    const cap = body.soft_thinking?.max_thinking_tokens;
    if (cap !== undefined && body.max_tokens !== undefined && cap > body.max_tokens) {
      ctx.addIssue({ code: 'custom', path: ['soft_thinking', 'max_thinking_tokens'], message: 'must not exceed max_tokens' });
    }
  })
  .openapi('ReasonRequest');
export type ReasonRequest = z.infer<typeof ReasonRequest>;

export const Usage = z
  .object({
    prompt_tokens: z.number().int(),
    reasoning_tokens: z.number().int().openapi({ description: 'Thinking steps, the closing </think> included.' }),
    answer_tokens: z.number().int(),
    completion_tokens: z.number().int().openapi({ description: 'reasoning_tokens + answer_tokens.' }),
    total_tokens: z.number().int(),
  })
  .openapi('ReasonUsage');

export const SoftThought = z
  .object({
    ids: z.array(z.number().int()).openapi({ description: 'The k token ids mixed at this thinking step.' }),
    tokens: z.array(z.string()).openapi({ description: 'Each id decoded alone (lossy for part of a character).' }),
    weights: z.array(z.number()).openapi({ description: 'Mixture weights of the ids (Gumbel-softmax), summing to 1.' }),
  })
  .openapi('SoftThought');

export const ReasonChoice = z
  .object({
    index: z.number().int(),
    reasoning: z.string().openapi({ description: 'The thinking text (the emitted tokens of the soft steps).' }),
    reasoning_content: z.string().openapi({ description: 'The same text under the name DeepSeek-style clients read.' }),
    answer: z.string(),
    extracted_answer: z.string().nullable(),
    finish_reason: z.enum(['stop', 'length', 'cancelled']),
    thinking_end: z.enum(['emitted', 'cap', 'cold_stop']).nullable(),
    usage: Usage.omit({ prompt_tokens: true, total_tokens: true }),
    soft_thoughts: z
      .array(SoftThought)
      .optional()
      .openapi({ description: 'With `soft_thoughts: true`: one entry per thinking step (the closing </think> excluded).' }),
  })
  .openapi('ReasonChoice');

export const Aggregate = z
  .object({
    answer: z.string().nullable(),
    votes: z.number().int(),
    agreement: z.number().openapi({ description: 'votes / samples.' }),
    samples: z.number().int().openapi({ description: 'Samples generated (fewer than n when adaptive voting stopped early).' }),
    distribution: z.array(z.object({ answer: z.string(), count: z.number().int() })),
  })
  .openapi('ReasonAggregate');

export const ReasonResponse = z
  .object({
    id: z.string(),
    object: z.literal('reason.result'),
    created: z.number().int(),
    model: z.string(),
    mode: z.enum(['soft', 'discrete']),
    seed: z.number().int(),
    choices: z.array(ReasonChoice),
    aggregate: Aggregate,
    usage: Usage,
  })
  .openapi('ReasonResponse');
export type ReasonResponse = z.infer<typeof ReasonResponse>;
