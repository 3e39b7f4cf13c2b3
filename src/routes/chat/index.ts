/**
 * `POST /v1/chat/completions`: an OpenAI-compatible view of the soft-thinking engine (n, stream, usage), so existing
 * clients work unchanged. The answer is `message.content`; the thinking text is `message.reasoning_content` (and
 * `reasoning`); usage counts thinking steps as `completion_tokens_details.reasoning_tokens`. No voting here: that
 * is /v1/reason. Streaming sends `chat.completion.chunk` objects and `[DONE]`; with stream_options.include_usage a
 * last chunk carries the usage.
 */
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ApiError, errorBody, errorResponses } from '../../errors';
import type { GenerationEvent } from '../../engine/types';
import { createRouter, type AppEnv } from '../../router';
import { reserveSamples, type SampleReservation } from '../../tenants/sample-budget';
import { bearerSecurity } from '../common';
import { planFor, runPlan, usageOf, type ReasonPlan } from '../../reasoning/plan';
import type { SamplingRun } from '../../reasoning/sampling-run';
import { VoteSettings, type ReasonRequest } from '../../reasoning/schemas';
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
    stream: body.stream,
    vote: VoteSettings.parse({}),
  };
}

const finishReason = (reason: string) => (reason === 'length' ? 'length' : 'stop');

function openAiUsage(run: SamplingRun) {
  const u = usageOf(run);
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.total_tokens,
    completion_tokens_details: { reasoning_tokens: u.reasoning_tokens },
  };
}

/** `reservation` holds the request's samples; it is released once the stream ended (finished, failed or aborted). */
function completionStream(c: Context<AppEnv>, plan: ReasonPlan, includeUsage: boolean, reservation: SampleReservation) {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    const head = { id: plan.id, object: 'chat.completion.chunk', created: plan.created, model: plan.model, system_fingerprint: null };
    let writes = Promise.resolve();
    const send = (data: unknown) => {
      writes = writes.then(() => stream.writeSSE({ data: typeof data === 'string' ? data : JSON.stringify(data) }));
    };
    for (let i = 0; i < plan.n; i++) send({ ...head, choices: [{ index: i, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    const onEvent = (event: GenerationEvent) => {
      if (event.type === 'delta') {
        const delta = event.phase === 'reasoning' ? { reasoning_content: event.text, reasoning: event.text } : { content: event.text };
        send({ ...head, choices: [{ index: event.sample, delta, finish_reason: null }] });
      } else {
        send({ ...head, choices: [{ index: event.sample.sample, delta: {}, finish_reason: finishReason(event.sample.finish_reason) }] });
      }
    };
    try {
      const run = await runPlan(plan, { onEvent, signal: abort.signal });
      if (includeUsage) send({ ...head, choices: [], usage: openAiUsage(run) });
    } catch (error) {
      if (!(error instanceof ApiError)) console.error(`[${plan.id}] chat stream failed`, error);
      send(
        error instanceof ApiError
          ? errorBody(error.status, error.message, error.opts)
          : errorBody(500, 'Internal server error.', { code: 'internal_error' }),
      );
    }
    send('[DONE]');
    await writes.finally(() => reservation.release());
  });
}

chatRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Reasoning'],
    summary: 'OpenAI-compatible chat completions over the soft-thinking engine',
    security: bearerSecurity,
    request: { body: { required: true, content: { 'application/json': { schema: ChatCompletionRequest } } } },
    responses: {
      200: {
        description: 'The completion (or, with stream: true, chat.completion.chunk server-sent events)',
        content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: { type: 'string' } } },
      },
      ...errorResponses(400, 401, 404, 413, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const plan = await planFor(c, asReasonRequest(body), 'chatcmpl');
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
        choices: run.samples.map((s) => ({
          index: s.sample,
          message: { role: 'assistant' as const, content: s.answer, reasoning_content: s.reasoning, reasoning: s.reasoning },
          finish_reason: finishReason(s.finish_reason),
          logprobs: null,
        })),
        usage: openAiUsage(run),
      },
      200,
    );
  },
);
