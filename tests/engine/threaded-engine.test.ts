/**
 * The threaded engine (src/engine/threaded-engine.ts: OnnxEngine in worker threads) against the in-process OnnxEngine
 * on the bundled tiny model (models/tiny, or TINY_MODEL_DIR): the same samples, the same streaming events, the same
 * cancellation and input errors; a thread that dies rejects its requests and is replaced; release() ends the threads,
 * also in the middle of decoding.
 */
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxEngine } from '../../src/engine/onnx-engine';
import { ThreadedEngine } from '../../src/engine/threaded-engine';
import { EngineInputError, type GenerationEvent, type GenerationRequest, type ReasoningEngine } from '../../src/engine/types';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');
const MESSAGES = [{ role: 'user' as const, content: 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?' }];
const SOFT_THINKING = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: 48, cold_stop: null };
const ANSWER = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 };
const SOFT: GenerationRequest = { messages: MESSAGES, mode: 'soft', soft_thinking: SOFT_THINKING, answer: ANSWER, max_tokens: 64, seed: 11, samples: [0, 1, 2, 5] };
const DISCRETE: GenerationRequest = { ...SOFT, mode: 'discrete', answer: { temperature: 0.8, top_k: 0, top_p: 1, min_p: 0 }, seed: 12, samples: [0, 3, 4] };
// Hot sampling keeps the tiny model from ending early, so decoding lasts long enough to abort or crash mid-run.
const HOT = { temperature: 3, top_k: 0, top_p: 1, min_p: 0 };
const LONG: GenerationRequest = {
  ...SOFT,
  soft_thinking: { ...SOFT_THINKING, ...HOT, max_thinking_tokens: 200 },
  answer: HOT,
  max_tokens: 200,
  seed: 3,
  samples: Array.from({ length: 16 }, (_, i) => i),
};

let inProcess: OnnxEngine;
let threaded: ThreadedEngine;

beforeAll(async () => {
  [inProcess, threaded] = await Promise.all([
    OnnxEngine.load(FOLDER, { modelId: 'tiny' }),
    ThreadedEngine.load(FOLDER, { modelId: 'tiny', poolSize: 2 }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([inProcess?.release(), threaded?.release()]);
});

/** The error a promise rejects with (handled at once), or null when it resolves. */
const settled = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => null, (error: unknown) => error);

async function streamed(engine: ReasoningEngine, request: GenerationRequest) {
  const events: GenerationEvent[] = [];
  const result = await engine.generate(request, { onEvent: (event) => events.push(event) });
  return { result, events };
}

describe('ThreadedEngine', () => {
  it('describes the model as the in-process engine does', () => {
    expect(threaded.describe()).toEqual(inProcess.describe());
  });

  it.each([
    ['soft', SOFT],
    ['discrete', DISCRETE],
    ['hot soft, 16 samples', LONG],
  ])('returns_the_same_samples_as_the_in_process_engine (%s)', async (_, request) => {
    const [expected, actual] = await Promise.all([inProcess.generate(request), threaded.generate(request)]);
    expect(actual).toEqual(expected);
    expect(actual.samples.map((s) => s.sample)).toEqual(request.samples);
  });

  it('streams_the_same_events_in_the_same_order', async () => {
    for (const request of [SOFT, DISCRETE]) {
      const expected = await streamed(inProcess, request);
      const actual = await streamed(threaded, request);
      expect(actual.events.length).toBeGreaterThan(request.samples.length);
      expect(actual.events).toEqual(expected.events);
      expect(actual.result).toEqual(expected.result);
    }
  });

  it('runs_concurrent_requests_across_the_pool_with_unchanged_samples', async () => {
    const requests = [SOFT, DISCRETE, { ...SOFT, seed: 99 }, { ...DISCRETE, seed: 98 }];
    const expected = await Promise.all(requests.map((r) => inProcess.generate(r)));
    const actual = await Promise.all(requests.map((r) => threaded.generate(r)));
    expect(actual).toEqual(expected);
    expect((await threaded.threads()).length).toBe(2);
  });

  it('cancels_every_sample_when_the_signal_is_already_aborted', async () => {
    const hooks = () => ({ signal: AbortSignal.abort() });
    const [expected, actual] = await Promise.all([inProcess.generate(SOFT, hooks()), threaded.generate(SOFT, hooks())]);
    expect(actual).toEqual(expected);
    expect(actual.samples.every((s) => s.finish_reason === 'cancelled')).toBe(true);
  });

  it('ends_unfinished_samples_as_cancelled_when_aborted_mid_run', async () => {
    const full = await inProcess.generate(LONG);
    const abort = new AbortController();
    const done = new Set<number>();
    const result = await threaded.generate(LONG, {
      signal: abort.signal,
      onEvent: (event) => {
        if (event.type === 'sample_done') done.add(event.sample.sample);
        abort.abort(); // at the first step's events
      },
    });
    const cancelled = result.samples.filter((s) => s.finish_reason === 'cancelled');
    expect(cancelled.length).toBeGreaterThan(0);
    result.samples.forEach((sample, i) => {
      const whole = full.samples[i];
      if (sample.finish_reason === 'cancelled') {
        // a cancelled sample is the uninterrupted sample cut short, with no sample_done event
        expect(done.has(sample.sample)).toBe(false);
        expect(sample.token_ids.length).toBeLessThan(whole.token_ids.length);
        expect(whole.token_ids.slice(0, sample.token_ids.length)).toEqual(sample.token_ids);
      } else {
        expect(sample).toEqual(whole);
      }
    });
  });

  it('rejects_a_prompt_over_the_context_with_an_EngineInputError_naming_its_param', async () => {
    const context = threaded.describe().context_length;
    const tooLong = { ...SOFT, messages: [{ role: 'user' as const, content: '7 + '.repeat(context) }] };
    const tooMany = { ...SOFT, max_tokens: context };
    for (const [request, param] of [[tooLong, 'messages'], [tooMany, 'max_tokens']] as const) {
      const expected = (await inProcess.generate(request).catch((e: unknown) => e)) as EngineInputError;
      for (const call of [() => threaded.preflight(request), () => threaded.generate(request)]) {
        const error = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(EngineInputError);
        expect((error as EngineInputError).param).toBe(param);
        expect((error as EngineInputError).message).toBe(expected.message);
      }
    }
  });

  it('passes_an_error_thrown_by_onEvent_to_the_caller_as_in_process', async () => {
    const boom = () => {
      throw new Error('client went away');
    };
    await expect(inProcess.generate(SOFT, { onEvent: boom })).rejects.toThrow('client went away');
    await expect(threaded.generate(SOFT, { onEvent: boom })).rejects.toThrow('client went away');
    expect(await threaded.generate(SOFT)).toEqual(await inProcess.generate(SOFT));
  });
});

describe('ThreadedEngine threads', () => {
  it('rejects_pending_work_of_a_crashed_thread_and_serves_the_next_request_on_a_new_one', async () => {
    const engine = await ThreadedEngine.load(FOLDER, { modelId: 'tiny', poolSize: 1 });
    try {
      const [thread] = await engine.threads();
      let started!: () => void;
      const decoding = new Promise<void>((r) => (started = r));
      const pending = [engine.generate(LONG, { onEvent: () => started() }), engine.generate(LONG)].map(settled);
      await decoding;
      // An uncaught error in the thread (its dispatcher throws on a message it does not know). Not worker.terminate():
      // terminating a thread inside an onnxruntime run aborts the whole process (see src/engine/engine-thread-client.ts).
      thread.worker.postMessage({ type: 'no-such-message' });
      for (const outcome of await Promise.all(pending)) {
        const crashed = /engine thread of tiny exited \(code 1: .*unknown message.*\) with this request in flight/;
        expect(outcome).toMatchObject({ message: expect.stringMatching(crashed) });
      }
      expect(thread.alive).toBe(false);
      expect(await engine.generate(SOFT)).toEqual(await inProcess.generate(SOFT));
      const [replacement] = await engine.threads();
      expect(replacement).not.toBe(thread);
      expect(replacement.alive).toBe(true);
    } finally {
      await engine.release();
    }
  });

  it('release_ends_every_thread_mid_decoding_and_refuses_later_requests', async () => {
    const engine = await ThreadedEngine.load(FOLDER, { modelId: 'tiny', poolSize: 2 });
    await Promise.all([engine.generate(SOFT), engine.generate(DISCRETE)]);
    let started!: () => void;
    const decoding = new Promise<void>((r) => (started = r));
    const pending = [engine.generate(LONG, { onEvent: () => started() }), engine.generate(LONG)].map(settled);
    await decoding;
    const threads = await engine.threads();
    expect(threads.length).toBe(2);
    const exits = threads.map((t) => new Promise((r) => t.worker.once('exit', r)));
    await engine.release();
    expect(await Promise.all(exits)).toEqual([0, 0]);
    for (const outcome of await Promise.all(pending)) expect(outcome).toMatchObject({ message: 'engine thread of tiny was released' });
    expect(threads.every((t) => !t.alive)).toBe(true);
    await expect(engine.generate(SOFT)).rejects.toThrow(/released/);
  });

  it('rejects_load_of_a_folder_without_a_model_with_the_thread_s_error', async () => {
    await expect(ThreadedEngine.load(resolve(FOLDER, 'no-such-folder'), { modelId: 'missing' })).rejects.toThrow(/config\.json/);
  });
});
