/**
 * Continuous batching (src/engine/batch-scheduler.ts) on the bundled tiny model (models/tiny, or TINY_MODEL_DIR):
 * every sample of a batched run equals the same request decoded alone (OnnxEngine.generateAlone, the unbatched
 * engine), across mixed prompt lengths, soft and discrete modes, k, stop strings and requests joining mid-run. The
 * comparisons include each soft step's mixture weights (soft_thoughts) and the answer logprobs, which are computed
 * from the logits in float64: a logit off by one bit changes them, so equal results mean equal logits, not only equal
 * tokens. Also: one prefill per request, the cap on rows, fair admission across tenants and requests, a cancelled
 * request freeing its rows, a failing request leaving the others alone, adaptive voting, random churn (arrivals,
 * cancellations, a small cap, several tenants), the capacity quantum and the engine-kept cache.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_FOLDER, tinyPrompts } from '../helpers/tiny-model';
import { CacheBuffer } from '../../src/engine/cache-buffer';
import { probeCapacityQuantum, type MaskedForward } from '../../src/engine/capacity-quantum';
import { prefillTogether, prefillTogetherHolds } from '../../src/engine/batch-prefill';
import { BatchScheduler } from '../../src/engine/batch-scheduler';
import { emptyCache, type KvCache } from '../../src/engine/kv-cache';
import { loadChatTokenizer, type ModelGeometry } from '../../src/engine/model-folder';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import type { GenerationEvent, GenerationHooks, GenerationRequest, GenerationResult } from '../../src/engine/types';
import { runSamples } from '../../src/reasoning/sampling-run';

const FOLDER = TINY_FOLDER;
const PROMPTS = tinyPrompts();
const SOFT = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: 48, cold_stop: null };
const ANSWER = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 };
const HOT = { temperature: 3, top_k: 0, top_p: 1, min_p: 0 }; // keeps the tiny model from ending early

/** Request i of a varied set: prompt length, mode, k, temperatures, samples, stop strings, logprobs, soft thoughts. */
function varied(i: number): GenerationRequest {
  const discrete = i % 3 === 2;
  return {
    messages: [{ role: 'user', content: PROMPTS[(i * 7) % PROMPTS.length] }],
    mode: discrete ? 'discrete' : 'soft',
    soft_thinking: { ...SOFT, max_topk: 2 + (i % 5), temperature: i % 4 === 0 ? 1.5 : 1, cold_stop: i % 6 === 1 ? { entropy: 0.3, steps: 2 } : null },
    answer: { ...ANSWER, temperature: i % 5 === 3 ? 0 : 0.9 },
    max_tokens: 24 + (i % 4) * 12,
    seed: 7000 + i,
    samples: Array.from({ length: 1 + (i % 4) }, (_, j) => j * 3 + (i % 2)),
    stop: i % 4 === 2 ? ['\n'] : undefined,
    logprobs: 2,
    soft_thoughts: !discrete,
  };
}

const LONG: GenerationRequest = {
  ...varied(0),
  soft_thinking: { ...SOFT, ...HOT, max_thinking_tokens: 150 },
  answer: HOT,
  max_tokens: 150,
  samples: [0, 1, 2],
  seed: 31,
};

let engine: OnnxEngine; // batching, the probed quantum
let alone: OnnxEngine; // the unbatched engine: every request decoded alone
const expected = new Map<GenerationRequest, GenerationResult>();

/** The request decoded alone (memoised: the unbatched engine is deterministic). */
async function aloneResult(request: GenerationRequest): Promise<GenerationResult> {
  if (!expected.has(request)) expected.set(request, await alone.generateAlone(request));
  return expected.get(request)!;
}

async function streamedAlone(request: GenerationRequest) {
  const events: GenerationEvent[] = [];
  const result = await alone.generateAlone(request, { onEvent: (e) => events.push(e) });
  return { result, events };
}

/** Resolves once the engine's batch has run `steps` more forwards (or has nothing left to run). */
async function afterSteps(e: OnnxEngine, steps: number): Promise<void> {
  const target = e.batchStats()!.steps + steps;
  while (e.batchStats()!.steps < target && e.batchStats()!.requests > 0) await new Promise((r) => setImmediate(r));
}

/** Counts the prompts the engine prefills (rows of forwards of more than one position) while `work` runs. */
async function countingPrefills<T>(e: OnnxEngine, work: () => Promise<T>): Promise<{ value: T; prefills: number }> {
  const forward = e.forward.bind(e);
  let prefills = 0;
  e.forward = (ids, weights, dims, cache, positions, mask) => {
    if (dims[1] > 1) prefills += dims[0];
    return forward(ids, weights, dims, cache, positions, mask);
  };
  try {
    return { value: await work(), prefills };
  } finally {
    e.forward = forward;
  }
}

beforeAll(async () => {
  engine = await OnnxEngine.load(FOLDER, { modelId: 'tiny' });
  // the unbatched engine lays its cache out with the batched engine's quantum, as the batched engine's own alone does
  alone = await OnnxEngine.load(FOLDER, { modelId: 'tiny', batching: false, capacityQuantum: engine.describeBatching().quantum! });
}, 60_000);

afterAll(async () => {
  await Promise.all([engine?.release(), alone?.release()]);
});

describe('continuous batching', () => {
  it('measures a capacity quantum at load and batches with it', () => {
    const batching = engine.describeBatching();
    expect(batching.batching).toBe(true);
    expect(batching.quantum).toBeGreaterThanOrEqual(1);
    expect(batching.maxRows).toBe(32);
    expect(alone.describeBatching()).toEqual({ batching: false, quantum: null, maxRows: 32, prefiller: null });
  });

  it('every sample of concurrent requests equals the request decoded alone (mixed prompts, modes, k, stops)', async () => {
    const requests = Array.from({ length: 24 }, (_, i) => varied(i));
    const batched = await Promise.all(requests.map((r) => engine.generate(r)));
    expect(engine.batchStats()!.peakRows).toBeGreaterThan(8);
    for (const [i, request] of requests.entries()) {
      expect(batched[i]).toEqual(await aloneResult(request));
      expect(batched[i].samples.map((s) => s.sample)).toEqual(request.samples);
    }
    const prompts = new Set(batched.map((r) => r.prompt_tokens));
    expect(prompts.size).toBeGreaterThan(5); // the rows really had different lengths
    expect(batched.some((r) => r.samples.some((s) => s.soft_thoughts?.length))).toBe(true);
  }, 120_000);

  it('requests joining mid-run decode the same as alone, and so does the request they joined', async () => {
    const first = engine.generate(LONG);
    await afterSteps(engine, 5);
    const second = [varied(3), varied(4)].map((r) => engine.generate(r));
    await afterSteps(engine, 9);
    const third = [varied(5), varied(8), varied(13)].map((r) => engine.generate(r));
    expect(await first).toEqual(await aloneResult(LONG));
    for (const [i, request] of [varied(3), varied(4), varied(5), varied(8), varied(13)].entries()) {
      expect(await [...second, ...third][i]).toEqual(await alone.generateAlone(request));
    }
  }, 120_000);

  it('streams the same events in the same order as alone', async () => {
    const requests = [varied(1), varied(2), varied(6), varied(10)];
    const events = requests.map(() => [] as GenerationEvent[]);
    const results = await Promise.all(requests.map((r, i) => engine.generate(r, { onEvent: (e) => events[i].push(e) })));
    for (const [i, request] of requests.entries()) {
      const reference = await streamedAlone(request);
      expect(events[i].length).toBeGreaterThan(request.samples.length);
      expect(events[i]).toEqual(reference.events);
      expect(results[i]).toEqual(reference.result);
    }
  }, 60_000);

  it('prefills each request once, whatever its number of samples, and a prompt seen before not at all', async () => {
    const fresh = (i: number) => ({ ...varied(i), messages: [{ role: 'user' as const, content: `${PROMPTS[i]} (${i})` }] });
    const requests = [{ ...fresh(100), samples: [0, 1, 2, 3, 4, 5, 6, 7] }, { ...fresh(101), samples: [4, 9] }, fresh(102)];
    const first = await countingPrefills(engine, () => Promise.all(requests.map((r) => engine.generate(r))));
    expect(first.prefills).toBe(requests.length);
    const stats = engine.batchStats()!;
    expect(stats.prefillForwards).toBeLessThan(stats.prefills); // submitted together, prefilled together
    for (const [i, request] of requests.entries()) expect(first.value[i]).toEqual(await aloneResult(request));
    const hits = engine.batchStats()!.prefillHits;
    const again = await countingPrefills(engine, () => engine.generate({ ...requests[1], seed: 5, samples: [0] }));
    expect(again.prefills).toBe(0); // the same prompt starts from the kept prefill...
    expect(engine.batchStats()!.prefillHits).toBe(hits + 1);
    expect(again.value).toEqual(await alone.generateAlone({ ...requests[1], seed: 5, samples: [0] })); // ...exactly
  }, 60_000);

  it('never decodes more rows than the cap, and a request larger than the cap still completes exactly', async () => {
    const capped = await OnnxEngine.load(FOLDER, { modelId: 'tiny', maxBatchRows: 3, capacityQuantum: engine.describeBatching().quantum! });
    try {
      const requests = [{ ...varied(0), samples: [0, 1, 2, 3, 4, 5, 6] }, varied(1), varied(3), varied(6)];
      const { value, prefills } = await countingPrefills(capped, () => Promise.all(requests.map((r) => capped.generate(r))));
      expect(capped.batchStats()!.peakRows).toBe(3);
      expect(prefills).toBe(requests.length); // later samples of a request start from its kept prefill
      for (const [i, request] of requests.entries()) expect(value[i]).toEqual(await aloneResult(request));
    } finally {
      await capped.release();
    }
  }, 60_000);

  it('a cancelled request leaves at the next step, freeing its rows; the others are unaffected', async () => {
    const abort = new AbortController();
    const cancelled = engine.generate({ ...LONG, samples: Array.from({ length: 8 }, (_, i) => i) }, { signal: abort.signal });
    const others = [varied(7), LONG].map((r) => engine.generate(r));
    await afterSteps(engine, 4);
    const rowsBefore = engine.batchStats()!.rows;
    abort.abort();
    const result = await cancelled;
    expect(result.samples).toHaveLength(8);
    expect(result.samples.every((s) => s.finish_reason === 'cancelled' && s.token_ids.length >= 4)).toBe(true);
    expect(engine.batchStats()!.rows).toBeLessThanOrEqual(rowsBefore - 8);
    expect(await others[0]).toEqual(await aloneResult(varied(7)));
    expect(await others[1]).toEqual(await aloneResult(LONG));
    // aborted before it started: nothing decoded
    const early = new AbortController();
    early.abort();
    const none = await engine.generate(varied(1), { signal: early.signal });
    expect(none.samples.every((s) => s.finish_reason === 'cancelled' && s.token_ids.length === 0)).toBe(true);
  }, 60_000);

  it('a request whose onEvent throws fails alone; the batch goes on', async () => {
    const failing = engine.generate(LONG, {
      onEvent: () => {
        throw new Error('client gone');
      },
    });
    const other = engine.generate(varied(9));
    await expect(failing).rejects.toThrow('client gone');
    expect(await other).toEqual(await aloneResult(varied(9)));
    expect(engine.batchStats()!.requests).toBe(0);
  }, 60_000);

  it('adaptive voting gives the same samples and vote batched as alone, its waves sharing one prefill', async () => {
    const request = {
      ...varied(0),
      messages: [{ role: 'user' as const, content: `${PROMPTS[3]} (adaptive)` }],
      soft_thinking: { ...SOFT, noise_scale: 0 },
      answer: { ...ANSWER, temperature: 0 },
    };
    const busyRequest = { ...varied(11), messages: [{ role: 'user' as const, content: `${PROMPTS[4]} (busy)` }] };
    const vote = { extract: 'regex' as const, pattern: '[\\s\\S]*', normalize: 'exact' as const, adaptive: true, adaptive_batch_size: 2 };
    const reference = await runSamples({ describe: () => alone.describe(), generate: (r, h) => alone.generateAlone(r, h) }, request, 8, vote);
    const { value, prefills } = await countingPrefills(engine, () =>
      Promise.all([
        runSamples(engine, request, 8, vote),
        engine.generate(busyRequest), // another request in the batch meanwhile
      ]),
    );
    const [batched, busy] = value;
    expect(batched).toEqual(reference);
    expect(batched.samples.length).toBeLessThan(8); // decided early: later waves never entered the batch
    expect(batched.samples.length).toBeGreaterThan(2); // several waves...
    expect(prefills).toBe(2); // ...one prefill, and the other request's
    expect(busy).toEqual(await aloneResult(busyRequest));
  }, 60_000);
});

describe('continuous batching under churn', () => {
  it('random arrivals, cancellations and a small cap: every finished sample equals alone, the books balance', async () => {
    const quantum = engine.describeBatching().quantum!;
    const churn = await OnnxEngine.load(FOLDER, { modelId: 'tiny', maxBatchRows: 5, capacityQuantum: quantum });
    try {
      let state = 12345;
      const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
      const runs: Array<Promise<{ request: GenerationRequest; result: GenerationResult; cancelled: boolean }>> = [];
      for (let i = 0; i < 30; i++) {
        const request = { ...varied(40 + i), samples: Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, j) => j) };
        const abort = new AbortController();
        const cancel = rand() < 0.2;
        const tenant = ['A', 'B', 'C'][Math.floor(rand() * 3)];
        runs.push(churn.generate(request, { signal: abort.signal, tenant }).then((result) => ({ request, result, cancelled: cancel })));
        if (cancel) void afterSteps(churn, 1 + Math.floor(rand() * 6)).then(() => abort.abort());
        await afterSteps(churn, Math.floor(rand() * 3));
      }
      for (const { request, result, cancelled } of await Promise.all(runs)) {
        const reference = await aloneResult(request);
        result.samples.forEach((sample, i) => {
          if (sample.finish_reason === 'cancelled') {
            expect(cancelled).toBe(true);
            expect(reference.samples[i].token_ids.slice(0, sample.token_ids.length)).toEqual(sample.token_ids); // a prefix of alone
          } else {
            expect(sample).toEqual(reference.samples[i]);
          }
        });
        if (!cancelled) expect(result).toEqual(reference);
      }
      const stats = churn.batchStats()!;
      expect(stats).toMatchObject({ rows: 0, requests: 0, waiting: 0, columns: 0 });
      expect(stats.peakRows).toBe(5);
    } finally {
      await churn.release();
    }
  }, 120_000);
});

describe('admission (a stand-in model whose every sample runs exactly max_tokens)', () => {
  /** A model that always favours one visible token and keeps a zero cache; records each forward's batch size. */
  function standIn(geometry: ModelGeometry, favoured: number) {
    const batches: Array<{ columns: number; rows: number }> = []; // each decode forward: C and B
    const prefills: Array<[number, number]> = []; // each prefill forward: prompts and T
    const model: MaskedForward = {
      geometry,
      async forward(_ids, _weights, dims, cache, _positions, _mask) {
        await new Promise((r) => setImmediate(r)); // yields as onnxruntime's run does
        const [batch, length] = dims;
        const past = cache[Object.keys(cache)[0]].dims[2] as number;
        const logits = new Float32Array(batch * length * geometry.vocabSize);
        for (let i = 0; i < batch * length; i++) logits[i * geometry.vocabSize + favoured] = 10;
        if (length === 1) batches.push({ columns: past, rows: batch });
        else prefills.push([batch, length]);
        const fresh: KvCache = {};
        for (const name of Object.keys(cache)) fresh[name] = new ort.Tensor('float32', new Float32Array(batch * length), [batch, 1, length, 1]);
        return { logits, fresh };
      },
    };
    return { model, batches, prefills };
  }

  async function setup(maxRows: number, quantum: number, prefill: { maxPrefillBatch?: number; maxPrefillTokens?: number } = {}) {
    const tokenizer = await loadChatTokenizer(FOLDER);
    const geometry = { numLayers: 1, numKvHeads: 1, headDim: 1, vocabSize: engine.geometry.vocabSize, contextLength: 256 };
    const favoured = Array.from({ length: geometry.vocabSize }, (_, id) => id).find(
      (id) => id !== tokenizer.eosId && id !== tokenizer.thinkEndId && tokenizer.decode([id]).trim() !== '',
    )!;
    const { model, batches, prefills } = standIn(geometry, favoured);
    const scheduler = new BatchScheduler(model, tokenizer, { maxRows, quantum, ...prefill });
    const started: string[] = []; // sample starts in order, "name:sample"
    const submit = (name: string, tenant: string, n: number, maxTokens: number, promptLength = 10) => {
      const request: GenerationRequest = {
        messages: [],
        mode: 'discrete',
        soft_thinking: SOFT,
        answer: { temperature: 0, top_k: 0, top_p: 1, min_p: 0 },
        max_tokens: maxTokens,
        seed: 1,
        samples: Array.from({ length: n }, (_, i) => i),
      };
      const seen = new Set<number>();
      const onEvent = (e: GenerationEvent) => {
        const sample = e.type === 'delta' ? e.sample : e.sample.sample;
        if (!seen.has(sample)) started.push(`${name}:${sample}`);
        seen.add(sample);
      };
      return scheduler.submit(request, Array.from({ length: promptLength }, () => favoured), maxTokens, { tenant, onEvent });
    };
    const steps = async (count: number) => {
      const target = scheduler.stats().steps + count;
      while (scheduler.stats().steps < target) await new Promise((r) => setImmediate(r));
    };
    return { scheduler, batches, prefills, started, submit, steps };
  }

  it('free rows go to the tenant with the fewest rows, then to the request with the fewest, then the oldest', async () => {
    const { scheduler, batches, started, submit, steps } = await setup(3, 1);
    const a1 = submit('a1', 'A', 6, 10); // three rows at once, then the cap
    await steps(2);
    const a2 = submit('a2', 'A', 1, 10);
    const b1 = submit('b1', 'B', 1, 10);
    await Promise.all([a1, a2, b1]);
    expect(started.slice(0, 3)).toEqual(['a1:0', 'a1:1', 'a1:2']);
    // a1's three rows end together; tied tenants (0 rows each) and requests (0 rows each) -> the oldest, a1; then
    // tenant B (0 rows) before tenant A (1 row); then, within A, a2 (0 rows) before a1 (1 row)
    expect(started.slice(3, 6)).toEqual(['a1:3', 'b1:0', 'a2:0']);
    expect(started.slice(6)).toEqual(['a1:4', 'a1:5']);
    expect(Math.max(...batches.map((b) => b.rows))).toBe(3);
    expect(scheduler.stats().peakRows).toBe(3);
  });

  it('prefills waiting requests together, as many as free rows, maxPrefillBatch and maxPrefillTokens allow', async () => {
    const { scheduler, prefills, submit } = await setup(4, 1, { maxPrefillBatch: 3, maxPrefillTokens: 40 });
    // (the stand-in's prompts of one length are one prompt, so the lengths differ.) The five arrive in one tick and
    // four rows are free: one more request than that may be prefilled ahead, three to a forward: a, b and c first
    // (3 prompts x 13 = 39 <= 40 tokens), then d and e together, while a, b and c take their rows
    const all = [submit('a', 'A', 1, 20, 12), submit('b', 'B', 1, 20, 9), submit('c', 'C', 1, 20, 13), submit('d', 'D', 1, 20, 11), submit('e', 'E', 1, 20, 10)];
    await Promise.all(all);
    expect(prefills).toEqual([[3, 13], [2, 11]]);
    expect(scheduler.stats()).toMatchObject({ prefills: 5, prefillForwards: 2 });
    // the token bound: 30 tokens take p0 and p1 (2 x 15), not p2 too (3 x 15 = 45), nor p3 (3 x 16); then p2 and
    // p3 would be 2 x 16 = 32: each goes alone
    const bounded = await setup(8, 1, { maxPrefillBatch: 8, maxPrefillTokens: 30 });
    await Promise.all([14, 15, 13, 16].map((n, i) => bounded.submit(`p${i}`, 'A', 1, 5, n)));
    expect(bounded.prefills).toEqual([[2, 15], [1, 13], [1, 16]]);
    // one prompt per forward: each request's prefill its own
    const single = await setup(2, 1, { maxPrefillBatch: 1 });
    await Promise.all([12, 9, 13].map((n, i) => single.submit(`s${i}`, 'A', 1, 5, n)));
    expect(single.prefills).toEqual([[1, 12], [1, 9], [1, 13]]);
  });

  it('a request joins at the next step whatever its prompt length; the capacity grows by the layout step', async () => {
    const { batches, started, submit } = await setup(2, 4);
    // first (8 positions) and late (9) start together; other (40) waits for a free row
    const all = [submit('first', 'A', 1, 30, 8), submit('late', 'B', 1, 10, 9), submit('other', 'C', 1, 10, 40)];
    await Promise.all(all);
    expect(started).toEqual(['first:0', 'late:0', 'other:0']);
    // capacities are multiples of max(quantum, 16): 16 for rows of 8 and 9 positions, 32 once late has 16
    expect(batches.slice(0, 2)).toEqual([
      { columns: 16, rows: 2 },
      { columns: 16, rows: 2 },
    ]);
    expect(batches[8]).toEqual({ columns: 32, rows: 2 }); // late: 9 + 7 generated = 16 positions fill 16 columns
    // late ends after 9 forwards (10 tokens, the first from its prefill); other joins the next step, and the
    // capacity grows to hold its 40 positions
    expect(batches[9]).toEqual({ columns: 48, rows: 2 });
    expect(batches.slice(10).every((b) => b.rows === 2 || b.rows === 1)).toBe(true);
  });
});

describe('capacity quantum and the engine-kept cache', () => {
  /**
   * Logits of decode steps of a prompt: alone (capacity the length rounded up to the quantum), or as row 1 of a
   * batch of 3 beside rows of 5 and 70 positions, with `extra` more columns of capacity.
   */
  async function decodeLogits(e: OnnxEngine, prompt: number[], inputs: number[], quantum: number, extra: number | null): Promise<Float32Array[]> {
    const g = e.geometry;
    const V = g.vocabSize;
    const p = prompt.length;
    const pre = await e.forward(BigInt64Array.from(prompt, BigInt), new Float32Array(p).fill(1), [1, p, 1], emptyCache(g, 1), [prompt.map((_, i) => i)]);
    const longer = Array.from({ length: 70 }, (_, i) => (i * 5 + 3) % V);
    const other = await e.forward(BigInt64Array.from(longer, BigInt), new Float32Array(70).fill(1), [1, 70, 1], emptyCache(g, 1), [longer.map((_, i) => i)]);
    const buffer = new CacheBuffer(g, { quantum, step: quantum, extraColumns: extra ?? 0 });
    if (extra !== null) buffer.addRow(other.fresh, 0, 5);
    buffer.addRow(pre.fresh, 0, p);
    if (extra !== null) buffer.addRow(other.fresh, 0, 70);
    const ours = extra === null ? 0 : 1;
    const out: Float32Array[] = [];
    for (const token of inputs) {
      const ids = new BigInt64Array(buffer.rows).fill(BigInt(token));
      const positions = Array.from({ length: buffer.rows }, (_, r) => [buffer.length(r)]);
      const step = await e.forward(ids, new Float32Array(buffer.rows).fill(1), [buffer.rows, 1, 1], buffer.tensors(), positions, buffer.mask());
      out.push(step.logits.slice(ours * V, (ours + 1) * V));
      buffer.append(step.fresh);
    }
    return out;
  }

  const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, i) => x.every((v, j) => Object.is(v, b[i][j])));

  it('capacities that differ by multiples of the quantum keep logits bit for bit, over long rows (capacities past 512 columns)', async () => {
    const quantum = engine.describeBatching().quantum!;
    expect(await probeCapacityQuantum(engine)).toBe(quantum);
    const prompt = Array.from({ length: 53 }, (_, i) => (i * 37 + 11) % engine.geometry.vocabSize);
    const inputs = Array.from({ length: 90 }, (_, i) => (i * 13 + 5) % engine.geometry.vocabSize);
    const reference = await decodeLogits(engine, prompt, inputs, quantum, null);
    for (const extra of [quantum, 5 * quantum, 32 * quantum]) expect(same(await decodeLogits(engine, prompt, inputs, quantum, extra), reference)).toBe(true);
    if (quantum > 1) expect(same(await decodeLogits(engine, prompt, inputs, 1, 1), reference)).toBe(false); // why the quantum exists
  }, 60_000);

  it('without the quantum, batched samples drift from alone: the parity checks above can fail', async () => {
    const quantum = engine.describeBatching().quantum!;
    if (quantum === 1) return; // a session whose every capacity is exact
    // capacities in steps of 1: the batch's capacity follows its longest row, alone's its own length
    const loose = await OnnxEngine.load(FOLDER, { modelId: 'tiny', capacityQuantum: 1 });
    (loose as unknown as { scheduler: { cache: { step: number } } }).scheduler.cache.step = 1;
    const looseAlone = await OnnxEngine.load(FOLDER, { modelId: 'tiny', batching: false, capacityQuantum: 1 });
    try {
      const requests = Array.from({ length: 16 }, (_, i) => varied(i));
      const batched = await Promise.all(requests.map((r) => loose.generate(r)));
      const differing = await Promise.all(requests.map(async (r, i) => JSON.stringify(batched[i]) !== JSON.stringify(await looseAlone.generateAlone(r))));
      expect(differing.some(Boolean)).toBe(true);
    } finally {
      await Promise.all([loose.release(), looseAlone.release()]);
    }
  }, 60_000);

  it('prompts prefilled together (right-padded) give each prompt its logits and keys alone, bit for bit', async () => {
    expect(await prefillTogetherHolds(engine)).toBe(true);
    const prompts = [3, 10, 17, 24, 31, 38, 45].map((i) => engine.tokenizer.encodeChat([{ role: 'user', content: PROMPTS[i] }]));
    expect(new Set(prompts.map((p) => p.length)).size).toBeGreaterThan(3); // mixed lengths: most rows padded
    const together = await prefillTogether(engine, prompts);
    for (const [i, prompt] of prompts.entries()) {
      const [solo] = await prefillTogether(engine, [prompt]);
      expect(together[i].cache['past_key_values.0.key'].dims).toEqual(solo.cache['past_key_values.0.key'].dims);
      expect(Array.from(together[i].logits)).toEqual(Array.from(solo.logits));
      for (const name of Object.keys(solo.cache)) {
        expect(Array.from(together[i].cache[name].data as Float32Array)).toEqual(Array.from(solo.cache[name].data as Float32Array));
      }
    }
  }, 60_000);

  it('keeps each row in columns 0..n-1 over zeros, writes fresh columns at n, moves the last row into a leaving one', () => {
    const g = { numLayers: 1, numKvHeads: 2, headDim: 2, vocabSize: 4, contextLength: 64 };
    // a [2, 2, 3, 2] source with distinct values
    const source: KvCache = {};
    for (const name of ['past_key_values.0.key', 'past_key_values.0.value']) {
      source[name] = new ort.Tensor('float32', Float32Array.from({ length: 2 * 2 * 3 * 2 }, (_, i) => i + 1), [2, 2, 3, 2]);
    }
    const buffer = new CacheBuffer(g, { quantum: 2, step: 4 });
    expect(buffer.addRow(source, 1, 2)).toBe(0);
    expect(buffer.addRow(source, 0, 3)).toBe(1);
    const key = () => Array.from(buffer.tensors()['past_key_values.0.key'].data as Float32Array);
    expect(buffer.tensors()['past_key_values.0.key'].dims).toEqual([2, 2, 4, 2]);
    // row 0 = source row 1's first 2 positions per head, then zeros; row 1 = source row 0's 3 positions
    expect(key().slice(0, 16)).toEqual([13, 14, 15, 16, 0, 0, 0, 0, 19, 20, 21, 22, 0, 0, 0, 0]);
    expect(Array.from(buffer.mask())).toEqual([1n, 1n, 0n, 0n, 1n, 1n, 1n, 1n, 0n, 1n]); // [2, C + 1]: own columns and column C
    const fresh: KvCache = {};
    for (const name of Object.keys(source)) fresh[name] = new ort.Tensor('float32', Float32Array.from([-1, -2, -3, -4, -5, -6, -7, -8]), [2, 2, 1, 2]);
    buffer.append(fresh);
    expect([buffer.length(0), buffer.length(1)]).toEqual([3, 4]);
    expect(key().slice(0, 16)).toEqual([13, 14, 15, 16, -1, -2, 0, 0, 19, 20, 21, 22, -3, -4, 0, 0]);
    buffer.append(fresh); // row 1 is full: the capacity grows by the step, the keys stay in their columns
    expect(buffer.columns).toBe(8);
    expect(key().slice(32, 48)).toEqual([1, 2, 3, 4, 5, 6, -5, -6, -5, -6, 0, 0, 0, 0, 0, 0]); // row 1, head 0
    expect(buffer.removeRow(0)).toBe(1); // row 1 moves into row 0
    expect(buffer.rows).toBe(1);
    expect(key().slice(0, 16)).toEqual([1, 2, 3, 4, 5, 6, -5, -6, -5, -6, 0, 0, 0, 0, 0, 0]);
    expect(() => buffer.addRow(source, 0, 4)).toThrow(RangeError); // more columns than the source has
    expect(buffer.rows).toBe(1); // nothing half-added
  });
});
