/**
 * From a validated ReasonRequest to an engine call (the plan) and from the sampling run to the response body.
 * Shared by /v1/reason and /v1/chat/completions.
 */
import type { Context } from 'hono';
import { ApiError } from '../errors';
import { EngineInputError, type GenerationHooks, type GenerationRequest, type ReasoningEngine } from '../engine/types';
import type { AppEnv } from '../router';
import { engineFor } from './engine-for';
import { runSamples, type AdaptiveVote, type SamplingRun } from './sampling-run';
import { toEngineMessages } from './messages';
import { SoftThinkingSettings, VoteSettings, stopList, type ReasonRequest, type ReasonResponse } from './schemas';

export interface ReasonPlan {
  id: string;
  created: number;
  model: string;
  engine: ReasoningEngine;
  request: Omit<GenerationRequest, 'samples'>;
  n: number;
  vote: AdaptiveVote;
  promptField: 'messages' | 'prompt';
  tenant: string; // who asks (the ONNX engine's batch shares its rows fairly across tenants)
}

function randomSeed(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo;
}

/** Engine settings that only some routes expose (chat and completions: logprobs; reason: soft_thoughts). */
export type PlanExtras = Pick<GenerationRequest, 'logprobs' | 'soft_thoughts'>;

/** Resolves the engine and the full engine request; bad input found by the engine's preflight is a 400. */
export async function planFor(c: Context<AppEnv>, body: ReasonRequest, idPrefix = 'reason', extras: PlanExtras = {}): Promise<ReasonPlan> {
  const plan = await buildPlan(c, body, idPrefix, extras);
  // Only the in-process engine's sample decoder records the per-step mixtures; the remote serve protocol has none.
  if (extras.soft_thoughts && plan.engine.describe().engine !== 'onnx') {
    throw new ApiError(400, `soft_thoughts: the engine serving ${body.model} (remote) does not record soft thoughts; leave soft_thoughts out.`, {
      param: 'soft_thoughts',
      code: 'unsupported_option',
    });
  }
  try {
    await plan.engine.preflight?.({ ...plan.request, samples: [0] });
  } catch (error) {
    if (error instanceof EngineInputError) throw inputError(plan, error);
    throw error;
  }
  return plan;
}

async function buildPlan(c: Context<AppEnv>, body: ReasonRequest, idPrefix: string, extras: PlanExtras): Promise<ReasonPlan> {
  const deps = c.get('deps');
  const engine = await engineFor(deps, c.get('tenantId'), body.model);
  const soft = body.soft_thinking ?? SoftThinkingSettings.parse({});
  const maxTokens = body.max_tokens ?? null;
  const contextLength = engine.describe().context_length;
  return {
    id: deps.ids.next(idPrefix),
    created: Math.floor(deps.clock.now() / 1000),
    tenant: c.get('tenantId'),
    model: body.model,
    engine,
    n: body.n,
    vote: body.vote ?? VoteSettings.parse({}),
    promptField: body.prompt !== undefined ? 'prompt' : 'messages',
    request: {
      messages: body.messages ? toEngineMessages(body.messages) : [{ role: 'user', content: body.prompt! }],
      mode: body.mode,
      soft_thinking: {
        temperature: soft.temperature,
        top_k: soft.top_k,
        top_p: soft.top_p,
        min_p: soft.min_p,
        max_topk: soft.max_topk,
        gumbel_tau: soft.gumbel_tau,
        // temperature 0 is greedy end to end: no Gumbel noise while thinking (the schema rejects any other value)
        noise_scale: soft.noise_scale ?? (body.temperature === 0 ? 0 : 1),
        max_thinking_tokens: soft.max_thinking_tokens ?? maxTokens ?? contextLength,
        cold_stop: soft.cold_stop,
      },
      answer: { temperature: body.temperature, top_k: body.top_k, top_p: body.top_p, min_p: body.min_p },
      max_tokens: maxTokens,
      seed: body.seed ?? randomSeed(),
      stop: stopList(body.stop),
      ...extras,
    },
  };
}

/** Runs the plan; an engine's input error becomes a 400 naming the request field. */
export async function runPlan(plan: ReasonPlan, hooks: GenerationHooks = {}): Promise<SamplingRun> {
  try {
    return await runSamples(plan.engine, plan.request, plan.n, plan.vote, { tenant: plan.tenant, ...hooks });
  } catch (error) {
    if (error instanceof EngineInputError) throw inputError(plan, error);
    throw error;
  }
}

export function inputError(plan: ReasonPlan, error: EngineInputError): ApiError {
  const param = error.param === 'messages' ? plan.promptField : error.param;
  return new ApiError(400, `${param}: ${error.message}`, { param, code: 'context_length_exceeded' });
}

export function usageOf(run: SamplingRun) {
  const reasoning = run.samples.reduce((sum, s) => sum + s.reasoning_tokens, 0);
  const answer = run.samples.reduce((sum, s) => sum + s.answer_tokens, 0);
  return {
    prompt_tokens: run.prompt_tokens,
    reasoning_tokens: reasoning,
    answer_tokens: answer,
    completion_tokens: reasoning + answer,
    total_tokens: run.prompt_tokens + reasoning + answer,
  };
}

export function reasonResponse(plan: ReasonPlan, run: SamplingRun): ReasonResponse {
  return {
    id: plan.id,
    object: 'reason.result',
    created: plan.created,
    model: plan.model,
    mode: plan.request.mode,
    seed: plan.request.seed,
    choices: run.samples.map((s, i) => ({
      index: s.sample,
      reasoning: s.reasoning,
      reasoning_content: s.reasoning,
      answer: s.answer,
      extracted_answer: run.answers[i],
      finish_reason: s.finish_reason,
      thinking_end: s.thinking_end,
      usage: {
        reasoning_tokens: s.reasoning_tokens,
        answer_tokens: s.answer_tokens,
        completion_tokens: s.reasoning_tokens + s.answer_tokens,
      },
      ...(s.soft_thoughts ? { soft_thoughts: s.soft_thoughts } : {}),
    })),
    aggregate: {
      answer: run.tally.answer,
      votes: run.tally.votes,
      agreement: run.tally.agreement,
      samples: run.tally.samples,
      distribution: run.tally.distribution,
    },
    usage: usageOf(run),
  };
}
