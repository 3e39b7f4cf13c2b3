/**
 * `POST /v1/chat/completions` schemas: OpenAI's request and response shapes over the soft-thinking engine. The
 * engine's own settings (mode, soft_thinking, top_k, min_p) are accepted as extensions; OpenAI fields that are not
 * implemented answer 400 naming the field (../../reasoning/openai-fields.ts), and so do fields OpenAI does not have.
 */
import { z } from '@hono/zod-openapi';
import { ChatMessage } from '../../reasoning/messages';
import { CompletionUsage, ignoredChatFields, unsupportedChatFields } from '../../reasoning/openai-compat';
import { MAX_SAMPLES, MAX_SEED, SoftThinkingSettings, StopSequences, checkGreedy } from '../../reasoning/schemas';

export const MAX_TOP_LOGPROBS = 20;

export const ChatCompletionRequest = z
  .object({
    model: z.string().min(1).max(256),
    messages: z.array(ChatMessage).min(1).max(256),
    n: z.number().int().min(1).max(MAX_SAMPLES).default(1),
    stream: z.boolean().default(false),
    stream_options: z.object({ include_usage: z.boolean().default(false) }).nullable().optional(),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z
      .number()
      .min(0)
      .max(2)
      .default(1)
      .openapi({ description: 'Answer temperature; 0 is greedy end to end (argmax answer, thinking without Gumbel noise).' }),
    top_p: z.number().gt(0).max(1).default(0.95),
    top_k: z.number().int().min(0).max(1000).default(5),
    min_p: z.number().min(0).lt(1).default(0),
    seed: z.number().int().min(0).max(MAX_SEED).nullable().optional(),
    stop: StopSequences,
    logprobs: z
      .boolean()
      .nullable()
      .optional()
      .openapi({ description: 'Log-probabilities of the answer tokens (raw model distribution); thinking steps have none.' }),
    top_logprobs: z
      .number()
      .int()
      .min(0)
      .max(MAX_TOP_LOGPROBS)
      .nullable()
      .optional()
      .openapi({ description: `Alternatives per answer token (0-${MAX_TOP_LOGPROBS}); needs logprobs: true.` }),
    mode: z.enum(['soft', 'discrete']).default('soft'),
    soft_thinking: SoftThinkingSettings.optional(),
    ...unsupportedChatFields,
    ...ignoredChatFields,
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.mode === 'discrete' && body.soft_thinking !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['soft_thinking'], message: 'soft_thinking does not apply to mode "discrete"' });
    }
    if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
      ctx.addIssue({ code: 'custom', path: ['max_completion_tokens'], message: 'differs from max_tokens; give one of them' });
    }
    if (body.top_logprobs != null && body.logprobs !== true) {
      ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: 'needs logprobs: true' });
    }
    checkGreedy(body, ctx);
  })
  .openapi('ChatCompletionRequest');
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

const TopLogprob = z
  .object({
    token: z.string(),
    bytes: z.array(z.number().int()).openapi({ description: "The token's UTF-8 bytes (a token may hold part of a character)." }),
    logprob: z.number(),
  })
  .openapi('TopLogprob');

export const ChatLogprobs = z
  .object({
    content: z.array(TopLogprob.extend({ top_logprobs: z.array(TopLogprob) }).openapi('ChatCompletionTokenLogprob')),
    refusal: z.null(),
  })
  .openapi('ChatChoiceLogprobs', {
    description:
      'One entry per answer token (the end-of-sequence token excluded; the token that completed a stop string ' +
      'included): log p under the model (log_softmax of the raw logits, before temperature and filters).',
  });

export const ChatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    system_fingerprint: z.string().nullable(),
    seed: z.number().int().openapi({ description: 'The Philox seed used (the given one or a random one).' }),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({
          role: z.literal('assistant'),
          content: z.string(),
          reasoning_content: z.string(),
          reasoning: z.string(),
        }),
        finish_reason: z.enum(['stop', 'length']),
        logprobs: ChatLogprobs.nullable(),
      }),
    ),
    usage: CompletionUsage,
  })
  .openapi('ChatCompletion');
