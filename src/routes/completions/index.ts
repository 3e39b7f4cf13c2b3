/**
 * `POST /v1/completions`: OpenAI's legacy completions (as vLLM serves them) over the soft-thinking engine, for
 * clients that only speak this endpoint. Each prompt is one user turn of the model's chat template; `text` is the
 * answer and `reasoning_content` the thinking text. n choices per prompt, indexed prompt x n + sample, all with the
 * request's one seed. Streaming sends `text_completion` chunks (thinking as `reasoning_content` with empty text),
 * an optional usage chunk and `[DONE]`.
 */
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ApiError, errorResponses } from '../../errors';
import type { GeneratedSample, GenerationEvent, GenerationHooks, TokenLogprob } from '../../engine/types';
import { eventStream } from '../../reasoning/event-stream';
import { finishReason, openAiUsage } from '../../reasoning/openai-compat';
import { planFor, runPlan, type PlanExtras, type ReasonPlan } from '../../reasoning/plan';
import type { SamplingRun } from '../../reasoning/sampling-run';
import { VoteSettings, type ReasonRequest } from '../../reasoning/schemas';
import { createRouter, type AppEnv } from '../../router';
import { reserveSamples, type SampleReservation } from '../../tenants/sample-budget';
import { bearerSecurity } from '../common';
import { Completion, CompletionRequest } from './schemas';

export const completionsRouter = createRouter();

function asReasonRequest(body: CompletionRequest, prompt: string, seed: number | undefined): ReasonRequest {
  return {
    model: body.model,
    prompt,
    n: body.n,
    mode: body.mode,
    soft_thinking: body.soft_thinking,
    max_tokens: body.max_tokens ?? undefined,
    temperature: body.temperature,
    top_k: body.top_k,
    top_p: body.top_p,
    min_p: body.min_p,
    seed,
    stop: body.stop,
    stream: body.stream,
    vote: VoteSettings.parse({}),
  };
}

/** The plan of prompt i; a prompt the model cannot take is a 400 naming `prompt[i]` when prompts are a list. */
async function planOf(c: Context<AppEnv>, body: CompletionRequest, i: number, seed: number | undefined, extras: PlanExtras) {
  const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[i];
  try {
    return await planFor(c, asReasonRequest(body, prompt, seed), 'cmpl', extras);
  } catch (error) {
    if (!(error instanceof ApiError) || error.opts.param !== 'prompt' || typeof body.prompt === 'string') throw error;
    const param = `prompt[${i}]`;
    throw new ApiError(error.status, error.message.replace(/^prompt/, param), { ...error.opts, param });
  }
}

/** OpenAI's legacy logprobs of answer tokens; text offsets count from `start` (the choice's text so far). */
function legacyLogprobs(entries: TokenLogprob[], start = 0) {
  let offset = start;
  const text_offset = entries.map((e) => {
    const at = offset;
    offset += e.token.length;
    return at;
  });
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries([...e.top_logprobs.map((t) => [t.token, t.logprob]), [e.token, e.logprob]])),
    text_offset,
  };
}

/** The runs of every prompt, one after another; events and samples are renumbered to choice indices. */
async function runAll(plans: ReasonPlan[], hooks: GenerationHooks = {}): Promise<SamplingRun[]> {
  const runs: SamplingRun[] = [];
  for (const [p, plan] of plans.entries()) {
    const offset = p * plan.n;
    const onEvent = hooks.onEvent && ((event: GenerationEvent) => hooks.onEvent!(renumbered(event, offset)));
    const run = await runPlan(plan, { ...hooks, onEvent });
    runs.push({ ...run, samples: run.samples.map((s) => ({ ...s, sample: s.sample + offset })) });
    if (hooks.signal?.aborted) break;
  }
  return runs;
}

function renumbered(event: GenerationEvent, offset: number): GenerationEvent {
  if (event.type === 'delta') return { ...event, sample: event.sample + offset };
  return { ...event, sample: { ...event.sample, sample: event.sample.sample + offset } };
}

function choiceOf(s: GeneratedSample) {
  return {
    index: s.sample,
    text: s.answer,
    reasoning_content: s.reasoning,
    logprobs: s.logprobs ? legacyLogprobs(s.logprobs) : null,
    finish_reason: finishReason(s.finish_reason),
  };
}

function completionStream(c: Context<AppEnv>, plans: ReasonPlan[], includeUsage: boolean, reservation: SampleReservation) {
  const first = plans[0];
  const head = { id: first.id, object: 'text_completion', created: first.created, model: first.model, system_fingerprint: null };
  const withLogprobs = first.request.logprobs != null;
  const textSoFar = new Map<number, number>(); // choice -> characters of its token texts sent (legacy text_offset)
  const chunks = (event: GenerationEvent) => {
    if (event.type === 'sample_done') {
      textSoFar.delete(event.sample.sample);
      return [{ ...head, choices: [{ index: event.sample.sample, text: '', logprobs: null, finish_reason: finishReason(event.sample.finish_reason) }] }];
    }
    if (event.phase === 'reasoning') {
      return [{ ...head, choices: [{ index: event.sample, text: '', reasoning_content: event.text, logprobs: null, finish_reason: null }] }];
    }
    const start = textSoFar.get(event.sample) ?? 0;
    const entries = event.logprobs ?? [];
    textSoFar.set(event.sample, start + entries.reduce((n, e) => n + e.token.length, 0));
    const logprobs = withLogprobs ? legacyLogprobs(entries, start) : null;
    return [{ ...head, choices: [{ index: event.sample, text: event.text, logprobs, finish_reason: null }] }];
  };
  return eventStream(c, reservation, {
    id: first.id,
    run: (hooks) => runAll(plans, hooks),
    chunks,
    closing: (runs) => (includeUsage ? [{ ...head, choices: [], usage: openAiUsage(runs) }] : []),
    samples: (runs) => runs.flatMap((run) => run.samples),
  });
}

completionsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Reasoning'],
    summary: 'OpenAI legacy completions (vLLM-style) over the soft-thinking engine',
    description:
      'Each prompt is one user turn of the chat template (the model thinks first); `text` is the answer, ' +
      '`reasoning_content` the thinking. `stop` cuts the answer only; `logprobs` (a count) reports answer tokens; ' +
      '`temperature: 0` is greedy end to end. `echo`, `suffix`, `best_of` other than n, penalties and logit_bias ' +
      'answer 400 naming the field.',
    security: bearerSecurity,
    request: { body: { required: true, content: { 'application/json': { schema: CompletionRequest } } } },
    responses: {
      200: {
        description: 'The completion (or, with stream: true, text_completion server-sent events)',
        content: { 'application/json': { schema: Completion }, 'text/event-stream': { schema: { type: 'string' } } },
      },
      ...errorResponses(400, 401, 404, 409, 413, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const prompts = typeof body.prompt === 'string' ? [body.prompt] : body.prompt;
    const extras = { logprobs: body.logprobs ?? null };
    const first = await planOf(c, body, 0, body.seed ?? undefined, extras);
    const plans = [first];
    for (let i = 1; i < prompts.length; i++) plans.push(await planOf(c, body, i, first.request.seed, extras));
    const reservation = await reserveSamples(c, c.get('deps'), c.get('tenantId'), prompts.length * body.n);
    if (body.stream) return completionStream(c, plans, body.stream_options?.include_usage ?? false, reservation);
    const runs = await runAll(plans, { signal: c.req.raw.signal }).finally(() => reservation.release());
    return c.json(
      {
        id: first.id,
        object: 'text_completion' as const,
        created: first.created,
        model: first.model,
        system_fingerprint: null,
        seed: first.request.seed,
        choices: runs.flatMap((run) => run.samples.map(choiceOf)),
        usage: openAiUsage(runs),
      },
      200,
    );
  },
);
