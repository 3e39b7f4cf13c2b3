/**
 * The server-sent event form of /v1/reason, in the chat-completions chunk style; every chunk carries the request's
 * `seed` (as the non-streamed answer does), so a random-seeded stream can be reproduced:
 *   data: {"object":"reason.chunk","seed":s,"choices":[{"index":i,"delta":{"reasoning":..,"reasoning_content":..},"finish_reason":null}]}
 *   data: {"object":"reason.chunk","seed":s,"choices":[{"index":i,"delta":{"content":..},"finish_reason":null}]}
 *   data: {"object":"reason.chunk","seed":s,"choices":[{"index":i,"delta":{},"finish_reason":"stop","extracted_answer":..,"usage":..}]}
 *         (with soft_thoughts: true, that final chunk of a choice also carries its "soft_thoughts")
 *   data: {"object":"reason.vote","seed":s,"aggregate":{..},"usage":{..},"choices":[]}
 *   data: [DONE]
 * Bad input is answered with a 4xx before the stream starts (the plan's preflight); running, errors and
 * Idempotency-Key replays are ../../reasoning/event-stream.ts.
 */
import type { Context } from 'hono';
import type { GenerationEvent } from '../../engine/types';
import { sampleAnswer } from '../../engine/vote';
import { eventStream } from '../../reasoning/event-stream';
import { reasonResponse, runPlan, type ReasonPlan } from '../../reasoning/plan';
import type { AppEnv } from '../../router';
import type { SampleReservation } from '../../tenants/sample-budget';

/** `reservation` holds the request's samples; it is released once the stream ended (finished, failed or aborted). */
export function reasonStream(c: Context<AppEnv>, plan: ReasonPlan, reservation: SampleReservation) {
  const head = { id: plan.id, created: plan.created, model: plan.model, seed: plan.request.seed };
  const chunks = (event: GenerationEvent) => {
    if (event.type === 'delta') {
      const delta = event.phase === 'reasoning' ? { reasoning: event.text, reasoning_content: event.text } : { content: event.text };
      return [{ ...head, object: 'reason.chunk', choices: [{ index: event.sample, delta, finish_reason: null }] }];
    }
    const s = event.sample;
    const choice = {
      index: s.sample,
      delta: {},
      finish_reason: s.finish_reason,
      thinking_end: s.thinking_end,
      extracted_answer: sampleAnswer(s.answer, plan.vote),
      usage: { reasoning_tokens: s.reasoning_tokens, answer_tokens: s.answer_tokens, completion_tokens: s.reasoning_tokens + s.answer_tokens },
      ...(s.soft_thoughts ? { soft_thoughts: s.soft_thoughts } : {}),
    };
    return [{ ...head, object: 'reason.chunk', choices: [choice] }];
  };
  return eventStream(c, reservation, {
    id: plan.id,
    run: (hooks) => runPlan(plan, hooks),
    chunks,
    closing: (run) => {
      const result = reasonResponse(plan, run);
      return [{ ...head, object: 'reason.vote', choices: [], aggregate: result.aggregate, usage: result.usage }];
    },
    samples: (run) => run.samples,
  });
}
