/**
 * Continuous batching (src/engine/batch-scheduler.ts) on the bundled tiny model (models/tiny, or TINY_MODEL_DIR):
 * every sample of a batched run equals the same request decoded alone (OnnxEngine.generateAlone, the unbatched
 * engine), across mixed prompt lengths, soft and discrete modes, k, stop strings and requests joining mid-run. The
 * comparisons include each soft step's mixture weights (soft_thoughts) and the answer logprobs, which are computed
 * from the logits in float64: a logit off by one bit changes them, so equal results mean equal logits, not only equal
 * tokens. Also: one prefill per request, the cap on rows, fair admission across tenants and requests, a cancelled
 * request freeing its rows, a failing request leaving the others alone, adaptive voting, random churn (arrivals,
 * cancellations, a small cap, several tenants), and the alignment quantum.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeAlignment, type MaskedForward } from '../../src/engine/batch-alignment';
import { prefillTogether, prefillTogetherHolds } from '../../src/engine/batch-prefill';
import { BatchScheduler } from '../../src/engine/batch-scheduler';
import { emptyCache, layoutRows, writeRow, type KvCache } from '../../src/engine/kv-cache';
import { loadChatTokenizer, type ModelGeometry } from '../../src/engine/model-folder';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import type { GenerationEvent, GenerationHooks, GenerationRequest, GenerationResult } from '../../src/engine/types';
import { runSamples } from '../../src/reasoning/sampling-run';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');
const PROMPTS: string[] = readFileSync(resolve(FOLDER, 'data/test.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line).prompt);
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
  [engine, alone] = await Promise.all([
    OnnxEngine.load(FOLDER, { modelId: 'tiny' }),
    OnnxEngine.load(FOLDER, { modelId: 'tiny', batching: false }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([engine?.release(), alone?.release()]);
});

describe('continuous batching', () => {
  it('measures an alignment quantum at load and batches with it', () => {
    const batching = engine.describeBatching();
    expect(batching.batching).toBe(true);
    expect(batching.quantum).toBeGreaterThanOrEqual(1);
    expect(batching.maxRows).toBe(32);
    expect(alone.describeBatching()).toEqual({ batching: false, quantum: null, maxRows: 32 });
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
    const capped = await OnnxEngine.load(FOLDER, { modelId: 'tiny', maxBatchRows: 3, alignmentQuantum: engine.describeBatching().quantum! });
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
    const churn = await OnnxEngine.load(FOLDER, { modelId: 'tiny', maxBatchRows: 5, alignmentQuantum: quantum });
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
      expect(stats).toMatchObject({ rows: 0, requests: 0, waiting: 0, slots: 0 });
      expect(stats.peakRows).toBe(5);
    } finally {
      await churn.release();
    }
  }, 120_000);
});

describe('admission (a stand-in model whose every sample runs exactly max_tokens)', () => {
  /** A model that always favours one visible token and keeps a zero cache; records each forward's batch size. */
  function standIn(geometry: ModelGeometry, favoured: number) {
    const batches: Array<{ columns: number; rows: number }> = []; // each decode forward: S and B
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
        const next = layoutRows(Array.from({ length: batch }, () => ({ cache, row: 0, length: 0 })), past + length, geometry);
        return { logits, cache: next };
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
    // (the stand-in's prompts of one length are one prompt, so the lengths differ.) a starts the scheduler and is
    // prefilled alone at once; b, c, d, e arrive meanwhile. Three rows are free: b, c and d are prefilled together
    // (3 prompts x 13 = 39 <= 40 tokens); e once a row frees up
    const all = [submit('a', 'A', 1, 20, 12), submit('b', 'B', 1, 20, 9), submit('c', 'C', 1, 20, 13), submit('d', 'D', 1, 20, 11), submit('e', 'E', 1, 20, 10)];
    await Promise.all(all);
    expect(prefills).toEqual([[1, 12], [3, 13], [1, 10]]);
    expect(scheduler.stats()).toMatchObject({ prefills: 5, prefillForwards: 3 });
    // the token bound: after p0, 30 tokens take p1 and p2 (2 x 15), not p3 too (3 x 16 = 48)
    const bounded = await setup(8, 1, { maxPrefillBatch: 8, maxPrefillTokens: 30 });
    await Promise.all([14, 15, 13, 16].map((n, i) => bounded.submit(`p${i}`, 'A', 1, 5, n)));
    expect(bounded.prefills).toEqual([[1, 14], [2, 15], [1, 16]]);
  });

  it('a request whose prompt is misaligned with the batch joins within quantum - 1 steps, its row kept for it', async () => {
    const { batches, started, submit } = await setup(2, 4);
    // submitted together: `first` opens the batch at S = 8; `late` (9 positions, the next in line) is misaligned
    // until S = 9; `other` (12) is aligned at once, but the one free row is kept for `late`
    const all = [submit('first', 'A', 1, 30, 8), submit('late', 'B', 1, 10, 9), submit('other', 'C', 1, 10, 12)];
    await Promise.all(all);
    expect(started).toEqual(['first:0', 'late:0', 'other:0']);
    expect(batches.slice(0, 2)).toEqual([
      { columns: 8, rows: 1 },
      { columns: 9, rows: 2 }, // late's padding is 0
    ]);
    // other starts when late's row is free (from S = 18) and S - 12 is a multiple of 4
    const alone = batches.findIndex((b, i) => i > 1 && b.rows === 1);
    const joined = batches.findIndex((b, i) => i > alone && b.rows === 2);
    expect(batches[alone].columns).toBe(18); // late: 10 tokens, the first from its prefill, 9 forwards
    expect(batches[joined].columns).toBe(20);
  });
});

describe('alignment quantum', () => {
  /** Logits of `steps` decode steps of a prompt, alone, or left-padded by `pad` columns in a batch of 3. */
  async function decodeLogits(e: OnnxEngine, prompt: number[], inputs: number[], pad: number | null): Promise<Float32Array[]> {
    const g = e.geometry;
    const V = g.vocabSize;
    const p = prompt.length;
    const pre = await e.forward(BigInt64Array.from(prompt, BigInt), new Float32Array(p).fill(1), [1, p, 1], emptyCache(g, 1), [prompt.map((_, i) => i)]);
    const rows = pad === null ? 1 : 3;
    let length = pad === null ? p : p + pad;
    let cache: KvCache =
      pad === null ? pre.cache : layoutRows([{ cache: pre.cache, row: 0, length: 0 }, { cache: pre.cache, row: 0, length: p }, { cache: pre.cache, row: 0, length: p }], length, g);
    const out: Float32Array[] = [];
    for (const [t, token] of inputs.entries()) {
      const mask = new BigInt64Array(rows * (length + 1)).fill(1n);
      if (pad !== null) mask.fill(0n, length + 1, length + 1 + pad); // row 1 (ours) padded; rows 0 and 2 see all
      const ids = new BigInt64Array(rows).fill(BigInt(token));
      const positions = Array.from({ length: rows }, (_, r) => [r === 1 || pad === null ? p + t : length]);
      const step = await e.forward(ids, new Float32Array(rows).fill(1), [rows, 1, 1], cache, positions, mask);
      out.push(step.logits.slice((rows === 1 ? 0 : 1) * V, (rows === 1 ? 1 : 2) * V));
      cache = step.cache;
      length++;
    }
    return out;
  }

  const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, i) => x.every((v, j) => Object.is(v, b[i][j])));

  it('padding by multiples of the quantum keeps logits bit for bit, over long rows (past 128 and 256 columns)', async () => {
    const quantum = engine.describeBatching().quantum!;
    expect(await probeAlignment(engine)).toBe(quantum);
    const prompt = Array.from({ length: 53 }, (_, i) => (i * 37 + 11) % engine.geometry.vocabSize);
    const inputs = Array.from({ length: 90 }, (_, i) => (i * 13 + 5) % engine.geometry.vocabSize);
    const reference = await decodeLogits(engine, prompt, inputs, null);
    for (const pad of [quantum, 5 * quantum, 32 * quantum]) expect(same(await decodeLogits(engine, prompt, inputs, pad), reference)).toBe(true);
    if (quantum > 1) expect(same(await decodeLogits(engine, prompt, inputs, 1), reference)).toBe(false); // why the quantum exists
  }, 60_000);

  it('without the quantum, batched samples drift from alone: the parity checks above can fail', async () => {
    const quantum = engine.describeBatching().quantum!;
    if (quantum === 1) return; // a session whose every padding is exact
    const loose = await OnnxEngine.load(FOLDER, { modelId: 'tiny', alignmentQuantum: 1 });
    try {
      const requests = Array.from({ length: 16 }, (_, i) => varied(i));
      const batched = await Promise.all(requests.map((r) => loose.generate(r)));
      const differing = await Promise.all(requests.map(async (r, i) => JSON.stringify(batched[i]) !== JSON.stringify(await aloneResult(r))));
      expect(differing.some(Boolean)).toBe(true);
    } finally {
      await loose.release();
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

  it('layoutRows right-aligns rows over zeros and writeRow replaces one row in place', () => {
    const g = { numLayers: 1, numKvHeads: 2, headDim: 2, vocabSize: 4, contextLength: 16 };
    // a [2, 2, 3, 2] source with distinct values
    const filled: KvCache = {};
    for (const name of ['past_key_values.0.key', 'past_key_values.0.value']) {
      filled[name] = new ort.Tensor('float32', Float32Array.from({ length: 2 * 2 * 3 * 2 }, (_, i) => i + 1), [2, 2, 3, 2]);
    }
    const out = layoutRows([{ cache: filled, row: 1, length: 2 }, { cache: filled, row: 0, length: 3 }], 4, g);
    const key = out['past_key_values.0.key'];
    expect(key.dims).toEqual([2, 2, 4, 2]);
    // row 0 = source row 1's last 2 positions per head, after 2 zero positions
    expect(Array.from((key.data as Float32Array).subarray(0, 16))).toEqual([0, 0, 0, 0, 15, 16, 17, 18, 0, 0, 0, 0, 21, 22, 23, 24]);
    writeRow(out, 0, { cache: filled, row: 0, length: 1 });
    expect(Array.from((key.data as Float32Array).subarray(0, 16))).toEqual([0, 0, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0, 0, 0, 11, 12]);
    expect(() => writeRow(out, 0, { cache: filled, row: 0, length: 4 })).toThrow(RangeError);
  });
});
