/**
 * The concurrency table of bench/engine.ts: concurrent /v1/reason-like requests on one engine thread (ThreadedEngine,
 * pool 1, one onnxruntime intra-op thread), continuous batching (src/engine/batch-scheduler.ts; its prompts
 * prefilled in a thread of their own when a core is left for it, ThreadedEngine's default) against the unbatched
 * engine (each request decoded alone, interleaved between steps: batching false), the same requests in the same run,
 * one load after the other, the unbatched engine first for each load.
 *
 * A load is C clients in a closed loop, each sending its next request as soon as its last one is answered, until R
 * requests are answered. Request i is the same for both engines: prompt i of models/tiny/data/test.jsonl (30 to 64
 * prompt tokens, so prompts of mixed lengths share the batch; one load asks one prompt throughout), seed i, soft
 * thinking with Gumbel noise, max_tokens as given; n samples (1, or the mixed-n cycle). Both engines must answer
 * every request with the same samples; the table says whether they did.
 *
 * requests/s and tokens/s: answered requests and generated tokens (every sample's token_ids) over the load's wall
 * time; p50/p99: per-request latency, submit to answer; tokens per CPU-second: generated tokens over the CPU time
 * the process spent meanwhile (all its threads), which a machine busy with other work disturbs much less than wall
 * time. To spread that disturbance evenly, each load runs in two halves, unbatched, batched, unbatched, batched
 * (requests 0..R/2-1, then R/2..R-1), and the halves are summed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThreadedEngine } from '../src/engine/threaded-engine';
import type { GenerationRequest, GenerationResult } from '../src/engine/types';

export interface Load {
  name: string;
  clients: number;
  requests: number;
  n: (i: number) => number; // samples of request i
  prompt?: (i: number) => number; // the test.jsonl line of request i's prompt (default i)
}

export interface LoadMeasurement {
  wallS: number;
  cpuS: number;
  tokens: number;
  latenciesMs: number[];
  results: GenerationResult[];
}

export interface LoadSummary {
  requestsPerS: number;
  tokensPerS: number;
  tokensPerCpuS: number;
  p50Ms: number;
  p99Ms: number;
  results: GenerationResult[];
}

const MIXED_N = [1, 1, 1, 2, 4, 8];

export function loads(): Load[] {
  const nOne = (clients: number, requests: number): Load => ({ name: `${clients} concurrent, n=1`, clients, requests, n: () => 1 });
  return [
    nOne(1, 64), // the same 64 requests as the 8-concurrent load: p99 alone against p99 at 8 concurrent, like for like
    nOne(8, 64),
    nOne(32, 128),
    nOne(64, 192),
    { name: `16 concurrent, n in {${MIXED_N.join(',')}}`, clients: 16, requests: 72, n: (i) => MIXED_N[i % MIXED_N.length] },
    // every request the same question (its own seed): the batch's kept prefill serves them all, the unbatched engine
    // prefills each; the gap to the 32-concurrent row is what distinct prompts' prefills cost
    { ...nOne(32, 128), name: '32 concurrent, n=1, one prompt', prompt: () => 0 },
  ];
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];

export function requestFor(prompts: string[], i: number, n: number, maxTokens: number, prompt = i): GenerationRequest {
  return {
    messages: [{ role: 'user', content: prompts[prompt % prompts.length] }],
    mode: 'soft',
    soft_thinking: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: maxTokens, cold_stop: null },
    answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 },
    max_tokens: maxTokens,
    seed: 1000 + i,
    samples: Array.from({ length: n }, (_, j) => j),
  };
}

export function readPrompts(folder: string): string[] {
  return readFileSync(join(folder, 'data/test.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).prompt as string);
}

/** Requests [from, to) of a load on an engine: `clients` closed-loop clients until all are answered. */
export async function runLoad(engine: ThreadedEngine, load: Load, prompts: string[], maxTokens: number, from = 0, to = load.requests): Promise<LoadMeasurement> {
  const results: GenerationResult[] = [];
  const latenciesMs: number[] = [];
  let next = from;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: load.clients }, async () => {
      while (next < to) {
        const i = next++;
        const sent = performance.now();
        results[i - from] = await engine.generate(requestFor(prompts, i, load.n(i), maxTokens, load.prompt?.(i)));
        latenciesMs.push(performance.now() - sent);
      }
    }),
  );
  const wallS = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const tokens = results.reduce((sum, r) => sum + r.samples.reduce((s, x) => s + x.token_ids.length, 0), 0);
  return { wallS, cpuS: (used.user + used.system) / 1e6, tokens, latenciesMs, results };
}

function summary(load: Load, parts: LoadMeasurement[]): LoadSummary {
  const wallS = parts.reduce((s, p) => s + p.wallS, 0);
  const cpuS = parts.reduce((s, p) => s + p.cpuS, 0);
  const tokens = parts.reduce((s, p) => s + p.tokens, 0);
  const latencies = parts.flatMap((p) => p.latenciesMs).sort((a, b) => a - b);
  return {
    requestsPerS: load.requests / wallS,
    tokensPerS: tokens / wallS,
    tokensPerCpuS: tokens / cpuS,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    results: parts.flatMap((p) => p.results),
  };
}

export interface ConcurrencyRow {
  load: Load;
  unbatched: LoadSummary;
  batched: LoadSummary;
  identical: boolean;
}

/**
 * Every load on both engines (a warm-up load first on each), each engine in `poolSize` threads; the batched engine's
 * threads prefill in a thread of their own as `prefillThread` says (default: ThreadedEngine's, a core left free).
 */
export async function measureConcurrency(folder: string, maxTokens: number, only?: string[], poolSize = 1, prefillThread?: boolean): Promise<ConcurrencyRow[]> {
  const prompts = readPrompts(folder);
  const [unbatched, batched] = await Promise.all([
    ThreadedEngine.load(folder, { modelId: 'bench', poolSize, batching: false }),
    ThreadedEngine.load(folder, { modelId: 'bench', poolSize, prefillThread }),
  ]);
  try {
    const warmUp: Load = { name: 'warm-up', clients: 8, requests: 16, n: () => 1 };
    await runLoad(unbatched, warmUp, prompts, maxTokens);
    await runLoad(batched, warmUp, prompts, maxTokens);
    const rows: ConcurrencyRow[] = [];
    for (const load of loads().filter((l) => !only || only.some((o) => l.name.startsWith(o)))) {
      const half = Math.floor(load.requests / 2);
      const parts: Record<'a' | 'b', LoadMeasurement[]> = { a: [], b: [] };
      for (const [from, to] of [[0, half], [half, load.requests]]) {
        parts.a.push(await runLoad(unbatched, load, prompts, maxTokens, from, to));
        parts.b.push(await runLoad(batched, load, prompts, maxTokens, from, to));
      }
      const a = summary(load, parts.a);
      const b = summary(load, parts.b);
      rows.push({ load, unbatched: a, batched: b, identical: JSON.stringify(a.results) === JSON.stringify(b.results) });
      console.log(
        `${load.name}: unbatched ${a.tokensPerS.toFixed(0)} tokens/s (${a.tokensPerCpuS.toFixed(0)}/CPU-s) p99 ${a.p99Ms.toFixed(0)} ms | ` +
          `batched ${b.tokensPerS.toFixed(0)} tokens/s (${b.tokensPerCpuS.toFixed(0)}/CPU-s) p99 ${b.p99Ms.toFixed(0)} ms`,
      );
    }
    return rows;
  } finally {
    await Promise.all([unbatched.release(), batched.release()]);
  }
}
