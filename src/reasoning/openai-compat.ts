/**
 * What /v1/chat/completions and /v1/completions share as OpenAI look-alikes: the OpenAI request fields this API does
 * not implement (each accepted only at its neutral value, what the client means by leaving it out, as the OpenAPI
 * document says, and otherwise a 400 naming the field "not supported: ...", never silently ignored; a field OpenAI
 * does not have either is a 400 too, the schemas are strict), the usage object and the finish reasons.
 */
import { z } from '@hono/zod-openapi';
import { usageOf } from './plan';
import type { SamplingRun } from './sampling-run';

const notSupported = (reason: string) => ({ error: `not supported: ${reason}` });

/** A number field accepted only as 0. */
const onlyZero = (reason: string) => z.literal(0, notSupported(`${reason}; only 0`)).nullable().optional();
/** A list field accepted only empty. */
const onlyEmpty = (reason: string) => z.array(z.unknown()).max(0, notSupported(`${reason}; only []`)).nullable().optional();
/** A field accepted only as null. */
const onlyNull = (reason: string) => z.null(notSupported(reason)).optional();

/** Fields both chat and legacy completions share. */
export const unsupportedSamplingFields = {
  presence_penalty: onlyZero('no repetition penalties'),
  frequency_penalty: onlyZero('no repetition penalties'),
  logit_bias: z
    .record(z.string(), z.number())
    .refine((bias) => Object.keys(bias).length === 0, notSupported('no logit bias; only {}'))
    .openapi({ maxProperties: 0 })
    .nullable()
    .optional(),
};

/** Chat fields beyond plain text answers. */
export const unsupportedChatFields = {
  ...unsupportedSamplingFields,
  tools: onlyEmpty('no tool calling'),
  tool_choice: z.literal('none', notSupported('no tool calling; only "none"')).nullable().optional(),
  functions: onlyEmpty('no function calling'),
  function_call: z.literal('none', notSupported('no function calling; only "none"')).nullable().optional(),
  response_format: z
    .object({ type: z.literal('text', notSupported('answers are plain text; only {"type": "text"}')) })
    .strict()
    .nullable()
    .optional(),
  audio: onlyNull('text only'),
  modalities: z.array(z.literal('text', notSupported('text only; only ["text"]'))).nullable().optional(),
  prediction: onlyNull('no predicted outputs'),
  reasoning_effort: onlyNull('set soft_thinking.max_thinking_tokens instead'),
  web_search_options: onlyNull('no web search'),
};

/** Legacy completions' fields beyond one answer per sample. */
export const unsupportedCompletionFields = {
  ...unsupportedSamplingFields,
  echo: z.literal(false, notSupported('the prompt is not part of the answer; only false')).nullable().optional(),
  suffix: onlyNull('no insertion'),
};

/** Accepted and not used: they change nothing about the answer. */
export const ignoredFields = {
  user: z.string().max(256).nullable().optional().openapi({ description: 'Accepted for compatibility; not used.' }),
  metadata: z.record(z.string(), z.string()).nullable().optional().openapi({ description: 'Accepted; not stored.' }),
  store: z
    .literal(false, notSupported('completions are not stored; only false'))
    .nullable()
    .optional()
    .openapi({ description: 'Completions are not stored; only false.' }),
  service_tier: z.string().max(64).nullable().optional().openapi({ description: 'Accepted; there is one tier.' }),
};

/** Chat-only fields accepted and not used. */
export const ignoredChatFields = {
  ...ignoredFields,
  parallel_tool_calls: z.boolean().nullable().optional().openapi({ description: 'Accepted; there are no tools.' }),
};

export const CompletionUsage = z
  .object({
    prompt_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    total_tokens: z.number().int(),
    completion_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
  })
  .openapi('CompletionUsage');

/** OpenAI's usage of runs (one per prompt): thinking steps are completion tokens, also counted as reasoning_tokens. */
export function openAiUsage(runs: SamplingRun[]): z.infer<typeof CompletionUsage> {
  const total = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, completion_tokens_details: { reasoning_tokens: 0 } };
  for (const run of runs) {
    const u = usageOf(run);
    total.prompt_tokens += u.prompt_tokens;
    total.completion_tokens += u.completion_tokens;
    total.total_tokens += u.total_tokens;
    total.completion_tokens_details.reasoning_tokens += u.reasoning_tokens;
  }
  return total;
}

/** A stop string ends a sample with "stop" as eos does; a cancelled sample (client gone) is never seen. */
export const finishReason = (reason: string): 'stop' | 'length' => (reason === 'length' ? 'length' : 'stop');
