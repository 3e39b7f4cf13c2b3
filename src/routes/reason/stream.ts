/**
 * The server-sent event form of /v1/reason, in the chat-completions chunk style:
 *   data: {"object":"reason.chunk","choices":[{"index":i,"delta":{"reasoning":..,"reasoning_content":..},"finish_reason":null}]}
 *   data: {"object":"reason.chunk","choices":[{"index":i,"delta":{"content":..},"finish_reason":null}]}
 *   data: {"object":"reason.chunk","choices":[{"index":i,"delta":{},"finish_reason":"stop","extracted_answer":..,"usage":..}]}
 *   data: {"object":"reason.vote","aggregate":{..},"usage":{..},"choices":[]}
 *   data: [DONE]
 * Bad input is answered with a 4xx before the stream starts (the plan's preflight); an error after the stream
 * started is sent as `data: {"error": {...}}` before [DONE] (the status is already 200).
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ApiError, errorBody } from '../../errors';
import type { GenerationEvent } from '../../engine/types';
import { sampleAnswer } from '../../engine/vote';
import type { AppEnv } from '../../router';
import type { SampleReservation } from '../../tenants/sample-budget';
import { reasonResponse, runPlan, type ReasonPlan } from '../../reasoning/plan';

/** `reservation` holds the request's samples; it is released once the stream ended (finished, failed or aborted). */
export function reasonStream(c: Context<AppEnv>, plan: ReasonPlan, reservation: SampleReservation) {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    const head = { id: plan.id, created: plan.created, model: plan.model };
    let writes = Promise.resolve();
    const send = (data: unknown) => {
      writes = writes.then(() => stream.writeSSE({ data: typeof data === 'string' ? data : JSON.stringify(data) }));
    };
    const onEvent = (event: GenerationEvent) => {
      if (event.type === 'delta') {
        const delta = event.phase === 'reasoning' ? { reasoning: event.text, reasoning_content: event.text } : { content: event.text };
        send({ ...head, object: 'reason.chunk', choices: [{ index: event.sample, delta, finish_reason: null }] });
      } else {
        const s = event.sample;
        send({
          ...head,
          object: 'reason.chunk',
          choices: [
            {
              index: s.sample,
              delta: {},
              finish_reason: s.finish_reason,
              thinking_end: s.thinking_end,
              extracted_answer: sampleAnswer(s.answer, plan.vote),
              usage: { reasoning_tokens: s.reasoning_tokens, answer_tokens: s.answer_tokens, completion_tokens: s.reasoning_tokens + s.answer_tokens },
            },
          ],
        });
      }
    };
    try {
      const run = await runPlan(plan, { onEvent, signal: abort.signal });
      const result = reasonResponse(plan, run);
      send({ ...head, object: 'reason.vote', choices: [], aggregate: result.aggregate, usage: result.usage });
    } catch (error) {
      const status = error instanceof ApiError ? error.status : 500;
      if (!(error instanceof ApiError)) console.error(`[${plan.id}] reasoning stream failed`, error);
      const message = error instanceof ApiError ? error.message : 'Internal server error.';
      send(errorBody(status, message, error instanceof ApiError ? error.opts : { code: 'internal_error' }));
    }
    send('[DONE]');
    await writes.finally(() => reservation.release());
  });
}
