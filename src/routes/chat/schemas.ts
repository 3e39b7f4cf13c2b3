/**
 * `POST /v1/chat/completions` schemas: OpenAI's request and response shapes over the soft-thinking engine.
 * Unknown OpenAI fields are ignored (not rejected) so existing clients work unchanged; the engine's own settings
 * (mode, soft_thinking, top_k, min_p) are accepted as extensions.
 */
import { z } from '@hono/zod-openapi';
import { MAX_SAMPLES, MAX_SEED, SoftThinkingSettings } from '../../reasoning/schemas';

/** OpenAI messages may carry more fields (name, ...): they are ignored. */
const ChatMessage = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(200_000) });

export const ChatCompletionRequest = z
  .object({
    model: z.string().min(1).max(256),
    messages: z.array(ChatMessage).min(1).max(256),
    n: z.number().int().min(1).max(MAX_SAMPLES).default(1),
    stream: z.boolean().default(false),
    stream_options: z.object({ include_usage: z.boolean().default(false) }).nullable().optional(),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z.number().min(0).max(2).default(1),
    top_p: z.number().gt(0).max(1).default(0.95),
    top_k: z.number().int().min(0).max(1000).default(5),
    min_p: z.number().min(0).lt(1).default(0),
    seed: z.number().int().min(0).max(MAX_SEED).nullable().optional(),
    mode: z.enum(['soft', 'discrete']).default('soft'),
    soft_thinking: SoftThinkingSettings.optional(),
  })
  .superRefine((body, ctx) => {
    if (body.mode === 'discrete' && body.soft_thinking !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['soft_thinking'], message: 'soft_thinking does not apply to mode "discrete"' });
    }
    if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
      ctx.addIssue({ code: 'custom', path: ['max_completion_tokens'], message: 'differs from max_tokens; give one of them' });
    }
  })
  .openapi('ChatCompletionRequest');
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

const CompletionUsage = z
  .object({
    prompt_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    total_tokens: z.number().int(),
    completion_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
  })
  .openapi('CompletionUsage');

export const ChatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    system_fingerprint: z.string().nullable(),
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
        logprobs: z.null(),
      }),
    ),
    usage: CompletionUsage,
  })
  .openapi('ChatCompletion');
