/**
 * `POST /v1/reason`: soft-thinking reasoning with n samples and a majority vote (DESIGN.md). The body is validated
 * by ReasonRequest; the model resolves to an engine (onnx in-process or remote); samples run (adaptively when
 * asked), answers are extracted and voted. `stream: true` answers server-sent events in the chat-completions chunk
 * style (delta.reasoning / delta.reasoning_content while thinking, delta.content for the answer), then one
 * `reason.vote` chunk with the aggregate and usage, then `[DONE]`.
 */
import { createRoute } from '@hono/zod-openapi';
import { errorResponses } from '../../errors';
import { createRouter } from '../../router';
import { reserveSamples } from '../../tenants/sample-budget';
import { bearerSecurity } from '../common';
import { reasonStream } from './stream';
import { ReasonRequest, ReasonResponse } from '../../reasoning/schemas';
import { planFor, reasonResponse, runPlan } from '../../reasoning/plan';

export const reasonRouter = createRouter();

reasonRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Reasoning'],
    summary: 'Reason with soft thinking, n samples and a majority vote',
    description:
      'Thinking runs as soft tokens (mixtures of k token embeddings with Gumbel noise), the answer as ordinary ' +
      'tokens; mode "discrete" samples ordinary tokens throughout. Each choice carries its thinking text ' +
      '(`reasoning`, `reasoning_content`), answer and extracted answer; `aggregate` is the majority vote. ' +
      'With `stream: true` the response is text/event-stream ending with a `reason.vote` chunk and `[DONE]`. ' +
      '`soft_thoughts: true` adds, per choice, the k tokens and weights mixed at each thinking step (in a stream: on ' +
      'the choice\'s final chunk). ' +
      'A request holds its n samples of the organization\'s concurrent-sample limit (default 64) while it runs; ' +
      'over the limit the answer is 429 with `param: "n"`.',
    security: bearerSecurity,
    request: { body: { required: true, content: { 'application/json': { schema: ReasonRequest } } } },
    responses: {
      200: {
        description: 'The samples and their vote (or, with stream: true, server-sent events)',
        content: { 'application/json': { schema: ReasonResponse }, 'text/event-stream': { schema: { type: 'string' } } },
      },
      ...errorResponses(400, 401, 404, 413, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const plan = await planFor(c, body, 'reason', body.soft_thoughts ? { soft_thoughts: true } : {});
    const reservation = await reserveSamples(c, c.get('deps'), c.get('tenantId'), plan.n);
    if (body.stream) return reasonStream(c, plan, reservation);
    const run = await runPlan(plan, { signal: c.req.raw.signal }).finally(() => reservation.release());
    return c.json(reasonResponse(plan, run), 200);
  },
);
