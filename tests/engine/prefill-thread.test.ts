/**
 * Prefilling in a thread of its own (src/engine/prefill-thread-client.ts, src/engine/prefill-thread.ts) on the
 * bundled tiny model: the thread's prefills are bit for bit the engine's own, alone and several prompts together; an
 * engine loaded with prefillThread decodes every sample of concurrent requests exactly as alone while its prompts
 * are prefilled beside the decode steps; a prefill thread that dies loses nothing (its prefills in flight and later
 * ones are computed on the engine's thread); release() ends the thread; the threaded engine's default.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TINY_FOLDER, tinyPrompts } from '../helpers/tiny-model';
import { samePrefill } from '../../src/engine/batch-prefill';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import { spawnPrefillThread, ThreadPrefiller } from '../../src/engine/prefill-thread-client';
import { InlinePrefiller, prefillsAgree } from '../../src/engine/prefiller';
import { defaultPrefillThread, ThreadedEngine } from '../../src/engine/threaded-engine';
import type { GenerationRequest } from '../../src/engine/types';

const FOLDER = TINY_FOLDER;
const PROMPTS = tinyPrompts();
const SOFT = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: 48, cold_stop: null };

/** Request i: its own prompt (lengths differ), soft or discrete, 1 to 3 samples, soft thoughts and logprobs kept. */
function request(i: number): GenerationRequest {
  const discrete = i % 3 === 2;
  return {
    messages: [{ role: 'user', content: PROMPTS[(i * 5) % PROMPTS.length] }],
    mode: discrete ? 'discrete' : 'soft',
    soft_thinking: { ...SOFT, max_topk: 2 + (i % 4) },
    answer: { temperature: 0.9, top_k: 5, top_p: 0.95, min_p: 0 },
    max_tokens: 20 + (i % 3) * 10,
    seed: 9100 + i,
    samples: Array.from({ length: 1 + (i % 3) }, (_, j) => j),
    logprobs: 2,
    soft_thoughts: !discrete,
  };
}

/** The thread prefiller of an engine loaded with prefillThread (its private scheduler's). */
const threadOf = (engine: OnnxEngine) => (engine as unknown as { scheduler: { prefiller: ThreadPrefiller } }).scheduler.prefiller;

let threaded: OnnxEngine; // batching, prompts prefilled in a thread
let alone: OnnxEngine; // the unbatched engine

beforeAll(async () => {
  threaded = await OnnxEngine.load(FOLDER, { modelId: 'tiny', prefillThread: true });
  alone = await OnnxEngine.load(FOLDER, { modelId: 'tiny', batching: false, capacityQuantum: threaded.describeBatching().quantum! });
}, 60_000);

afterAll(async () => {
  await Promise.all([threaded?.release(), alone?.release()]);
});

describe('prefill thread', () => {
  it("prefills bit for bit as the engine's own session, one prompt or several together", async () => {
    const inline = new InlinePrefiller(alone);
    const thread = await ThreadPrefiller.connect(spawnPrefillThread(FOLDER).port, { fallback: inline, name: 'test prefill thread' });
    try {
      expect(thread.alive).toBe(true);
      expect(await prefillsAgree(inline, thread, alone.geometry.vocabSize)).toBe(true);
      const prompts = [3, 17, 40, 9].map((n, p) => Array.from({ length: n }, (_, i) => (i * 11 + p) % alone.geometry.vocabSize));
      const [a, b] = await Promise.all([inline.prefill(prompts), thread.prefill(prompts)]);
      expect(b).toHaveLength(4);
      b.forEach((prefill, i) => expect(samePrefill(prefill, a[i])).toBe(true));
      expect(b[2].cache['past_key_values.0.key'].dims).toEqual([1, alone.geometry.numKvHeads, 40, alone.geometry.headDim]);
    } finally {
      await thread.close();
    }
    expect(thread.alive).toBe(false);
  }, 60_000);

  it('an engine with a prefill thread decodes every sample of concurrent requests exactly as alone', async () => {
    expect(threaded.describeBatching()).toMatchObject({ batching: true, prefiller: 'thread' });
    const requests = Array.from({ length: 18 }, (_, i) => request(i));
    // in two waves a few steps apart, so later prompts are prefilled while the first rows decode
    const first = requests.slice(0, 9).map((r) => threaded.generate(r));
    await new Promise((r) => setTimeout(r, 5));
    const second = requests.slice(9).map((r) => threaded.generate(r));
    const results = await Promise.all([...first, ...second]);
    for (const [i, r] of requests.entries()) expect(results[i]).toEqual(await alone.generateAlone(r));
    const stats = threaded.batchStats()!;
    expect(stats.peakRows).toBeGreaterThan(4);
    expect(stats.prefills).toBeGreaterThanOrEqual(new Set(requests.map((r) => r.messages[0].content)).size);
  }, 120_000);

  it('a prefill thread that dies loses nothing: its prefills are computed on the engine thread from then on', async () => {
    const engine = await OnnxEngine.load(FOLDER, { modelId: 'tiny', prefillThread: true });
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const thread = threadOf(engine);
      const requests = Array.from({ length: 6 }, (_, i) => request(40 + i));
      const running = requests.map((r) => engine.generate(r));
      // an unknown message is an uncaught error in the thread: it exits with prefills possibly in flight
      (thread as unknown as { port: { postMessage(m: unknown): void } }).port.postMessage({ type: 'bogus' });
      const later = [request(50), request(51)].map((r) => engine.generate(r));
      const results = await Promise.all([...running, ...later]);
      for (const [i, r] of [...requests, request(50), request(51)].entries()) expect(results[i]).toEqual(await alone.generateAlone(r));
      expect(thread.alive).toBe(false);
      expect(warn.mock.calls.some(([message]) => String(message).includes('prefilled on the engine'))).toBe(true);
    } finally {
      warn.mockRestore();
      await engine.release();
    }
  }, 120_000);

  it("a prefill thread handed to an engine without a batch ends at once, not with the engine's thread", async () => {
    const { worker, port } = spawnPrefillThread(FOLDER);
    const exited = new Promise((r) => worker.once('exit', r));
    const unbatched = await OnnxEngine.load(FOLDER, { modelId: 'tiny', batching: false, prefillPort: port });
    try {
      expect(unbatched.describeBatching().prefiller).toBeNull();
      expect(await exited).toBe(0);
    } finally {
      await unbatched.release();
    }
  }, 60_000);

  it('release() ends the prefill thread', async () => {
    const engine = await OnnxEngine.load(FOLDER, { modelId: 'tiny', prefillThread: true });
    const thread = threadOf(engine);
    await engine.generate(request(60));
    expect(thread.alive).toBe(true);
    await engine.release();
    expect(thread.alive).toBe(false);
  }, 60_000);

  it('the threaded engine prefills in a thread by default when its pool leaves a core free; such a thread decodes as alone', async () => {
    expect(defaultPrefillThread(1)).toBe(availableParallelism() > 1);
    expect(defaultPrefillThread(availableParallelism())).toBe(false);
    const pooled = await ThreadedEngine.load(FOLDER, { modelId: 'tiny', poolSize: 1, prefillThread: true });
    const prefill = (pooled as unknown as { slots: Array<{ prefill: Worker }> }).slots[0].prefill;
    try {
      const requests = [request(70), request(71), request(72)];
      const results = await Promise.all(requests.map((r) => pooled.generate(r)));
      for (const [i, r] of requests.entries()) expect(results[i]).toEqual(await alone.generateAlone(r));
    } finally {
      await pooled.release();
    }
    expect(prefill.threadId).toBe(-1); // release() waited for it
  }, 60_000);

  it('an engine thread that dies while its prefill thread prefills takes nothing else down; the prefill thread ends itself', async () => {
    // Before prefill threads were started beside their engine thread, Node ended an engine thread's own prefill
    // thread with it, mid-run 4 times in 5, and that aborted the whole process ("Napi::Error").
    const pooled = await ThreadedEngine.load(FOLDER, { modelId: 'tiny', poolSize: 1, prefillThread: true });
    try {
      const [thread] = await pooled.threads();
      const prefill = (pooled as unknown as { slots: Array<{ prefill: Worker }> }).slots[0].prefill;
      const exited = new Promise((r) => prefill.once('exit', r));
      let next = 0;
      let stop = false;
      const outcomes: unknown[] = [];
      // many short requests with distinct prompts keep the prefill thread busy
      const clients = Array.from({ length: 24 }, async () => {
        while (!stop) outcomes.push(await pooled.generate({ ...request(next++), max_tokens: 4 }).then(() => 'ok', (e: Error) => e.message));
      });
      while (outcomes.length < 40) await new Promise((r) => setTimeout(r, 5));
      thread.worker.postMessage({ type: 'no-such-message' }); // an uncaught error in the engine thread
      expect(await exited).toBe(0); // its prefill thread saw its port close and ended itself, after its run
      stop = true;
      await Promise.all(clients);
      expect(outcomes.some((o) => typeof o === 'string' && o.includes('exited'))).toBe(true);
      const r = request(80);
      expect(await pooled.generate(r)).toEqual(await alone.generateAlone(r)); // a fresh thread, with a fresh prefill thread
    } finally {
      await pooled.release();
    }
  }, 60_000);
});
