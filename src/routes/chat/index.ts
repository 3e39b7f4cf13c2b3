/**
 * `POST /v1/chat/completions`: an OpenAI-compatible view of the soft-thinking engine (n, stream, stop, logprobs,
 * usage), so existing clients work unchanged. The answer is `message.content`; the thinking text is
 * `message.reasoning_content` (and `reasoning`); usage counts thinking steps as
 * `completion_tokens_details.reasoning_tokens`. No voting here: that is /v1/reason. Streaming sends
 * `chat.completion.chunk` objects and `[DONE]`; with stream_options.include_usage a last chunk carries the usage.
 */
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { errorResponses } from '../../errors';
import type { GenerationEvent, TokenLogprob } from '../../engine/types';
import { eventStream } from '../../reasoning/event-stream';
import { finishReason, openAiUsage } from '../../reasoning/openai-compat';
import { planFor, runPlan, type ReasonPlan } from '../../reasoning/plan';
import { VoteSettings, type ReasonRequest } from '../../reasoning/schemas';
import { createRouter, type AppEnv } from '../../router';
import { reserveSamples, type SampleReservation } from '../../tenants/sample-budget';
import { bearerSecurity } from '../common';
import { ChatCompletion, ChatCompletionRequest } from './schemas';

export const chatRouter = createRouter();

function asReasonRequest(body: ChatCompletionRequest): ReasonRequest {
  return {
    model: body.model,
    messages: body.messages,
    n: body.n,
    mode: body.mode,
    soft_thinking: body.soft_thinking,
    max_tokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    temperature: body.temperature,
    top_k: body.top_k,
    top_p: body.top_p,
    min_p: body.min_p,
    seed: body.seed ?? undefined,
    stop: body.stop,
    stream: body.stream,
    vote: VoteSettings.parse({}),
  };
}

const chatLogprobs = (entries: TokenLogprob[] | undefined) => (entries ? { content: entries, refusal: null } : null);

/** `reservation` holds the request's samples; it is released once the stream ended (finished, failed or aborted). */
function completionStream(c: Context<AppEnv>, plan: ReasonPlan, includeUsage: boolean, reservation: SampleReservation) {
  const head = { id: plan.id, object: 'chat.completion.chunk', created: plan.created, model: plan.model, system_fingerprint: null };
  const withLogprobs = plan.request.logprobs != null;
  const chunks = (event: GenerationEvent) => {
    if (event.type === 'sample_done') {
      return [{ ...head, choices: [{ index: event.sample.sample, delta: {}, finish_reason: finishReason(event.sample.finish_reason) }] }];
    }
    const delta = event.phase === 'reasoning' ? { reasoning_content: event.text, reasoning: event.text } : { content: event.text };
    const logprobs = withLogprobs && event.phase === 'answer' ? { logprobs: chatLogprobs(event.logprobs ?? []) } : {};
    return [{ ...head, choices: [{ index: event.sample, delta, ...logprobs, finish_reason: null }] }];
  };
  return eventStream(c, reservation, {
    id: plan.id,
    opening: Array.from({ length: plan.n }, (_, i) => ({
      ...head,
      choices: [{ index: i, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    })),
    run: (hooks) => runPlan(plan, hooks),
    chunks,
    closing: (run) => (includeUsage ? [{ ...head, choices: [], usage: openAiUsage([run]) }] : []),
    samples: (run) => run.samples,
  });
}

chatRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Reasoning'],
    summary: 'OpenAI-compatible chat completions over the soft-thinking engine',
    description:
      'OpenAI\'s request and response shapes. `stop` cuts the answer only (thinking is never cut); `logprobs` and ' +
      '`top_logprobs` report the answer tokens under the model\'s raw distribution (thinking steps are soft mixtures ' +
      'and have none); `temperature: 0` is greedy end to end (argmax answers, thinking without Gumbel noise). ' +
      'tools, response_format other than text, penalties and logit_bias answer 400 naming the field.',
    security: bearerSecurity,
    request: { body: { required: true, content: { 'application/json': { schema: ChatCompletionRequest } } } },
    responses: {
      200: {
        description: 'The completion (or, with stream: true, chat.completion.chunk server-sent events)',
        content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: { type: 'string' } } },
      },
      ...errorResponses(400, 401, 404, 409, 413, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : null;
    const plan = await planFor(c, asReasonRequest(body), 'chatcmpl', { logprobs });
    const reservation = await reserveSamples(c, c.get('deps'), c.get('tenantId'), plan.n);
    if (body.stream) return completionStream(c, plan, body.stream_options?.include_usage ?? false, reservation);
    const run = await runPlan(plan, { signal: c.req.raw.signal }).finally(() => reservation.release());
    return c.json(
      {
        id: plan.id,
        object: 'chat.completion' as const,
        created: plan.created,
        model: plan.model,
        system_fingerprint: null,
        seed: plan.request.seed,
        choices: run.samples.map((s) => ({
          index: s.sample,
          message: { role: 'assistant' as const, content: s.answer, reasoning_content: s.reasoning, reasoning: s.reasoning },
          finish_reason: finishReason(s.finish_reason),
          logprobs: chatLogprobs(s.logprobs),
        })),
        usage: openAiUsage([run]),
      },
      200,
    );
  },
);
