/**
 * Streamed /v1/reason through the real app with the bundled tiny model: every chunk carries the request's seed, and
 * Idempotency-Key holds for event streams (a finished stream's key replays its result as a stream, a concurrent
 * duplicate is 409 in progress, an aborted stream frees its key). Chat and completions streams share this
 * (src/reasoning/event-stream.ts); tests/reason/chat-options.test.ts replays a chat stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app';
import { MODEL, QUESTION, makeReasoningApp, sseChunks } from '../helpers/reasoning';

let t: TestApp;
let api: Awaited<ReturnType<typeof makeReasoningApp>>['api'];

beforeAll(async () => {
  ({ t, api } = await makeReasoningApp());
}, 60_000);

afterAll(() => t?.close());

const REQUEST = { model: MODEL, prompt: QUESTION, n: 2, max_tokens: 48, soft_thinking: { max_thinking_tokens: 32 }, stream: true };

/** Per choice: its reasoning, answer and last chunk (finish data), from reason.chunk events. */
function choicesOf(chunks: any[]) {
  const byIndex = new Map<number, { reasoning: string; answer: string; last: any }>();
  for (const choice of chunks.filter((c) => c.object === 'reason.chunk').flatMap((c) => c.choices)) {
    const entry = byIndex.get(choice.index) ?? { reasoning: '', answer: '', last: null };
    entry.reasoning += choice.delta.reasoning ?? '';
    entry.answer += choice.delta.content ?? '';
    entry.last = choice;
    byIndex.set(choice.index, entry);
  }
  return [...byIndex.entries()].sort(([a], [b]) => a - b).map(([, v]) => v);
}

describe('streamed /v1/reason', () => {
  it('carries_its_seed_in_every_chunk_and_the_seed_reproduces_the_samples', async () => {
    const chunks = await sseChunks(await api.post('/v1/reason', REQUEST)); // no seed: a random one
    const seeds = new Set(chunks.map((c) => c.seed));
    expect(seeds.size).toBe(1);
    const [seed] = seeds;
    expect(Number.isSafeInteger(seed)).toBe(true);
    const again = (await (await api.post('/v1/reason', { ...REQUEST, stream: false, seed })).json()) as any;
    expect(again.seed).toBe(seed);
    expect(choicesOf(chunks).map((c) => [c.reasoning, c.answer])).toEqual(again.choices.map((c: any) => [c.reasoning, c.answer]));
  }, 60_000);

  it('replays_a_finished_stream_for_the_same_idempotency_key_without_running_again', async () => {
    const key = { 'idempotency-key': 'reason-stream-1' };
    const first = await sseChunks(await api.post('/v1/reason', REQUEST, key));
    const res = await api.post('/v1/reason', REQUEST, key);
    expect(res.status).toBe(200);
    expect(res.headers.get('idempotent-replayed')).toBe('true');
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const replay = await sseChunks(res);
    expect(replay[0].id).toBe(first[0].id); // a second run would have a new id (and a new random seed)
    expect(replay[0].seed).toBe(first[0].seed);
    expect(replay[replay.length - 1]).toEqual(first[first.length - 1]); // the vote and usage
    expect(choicesOf(replay)).toEqual(choicesOf(first));
    const other = await api.post('/v1/reason', { ...REQUEST, n: 1 }, key);
    expect(other.status).toBe(409);
    expect(((await other.json()) as any).error).toMatchObject({ code: 'idempotency_key_reused', param: 'Idempotency-Key' });
  }, 60_000);

  it('answers_a_concurrent_duplicate_with_409_in_progress', async () => {
    const key = { 'idempotency-key': 'reason-stream-2' };
    const running = await api.post('/v1/reason', { ...REQUEST, max_tokens: 64 }, key);
    expect(running.status).toBe(200);
    const duplicate = await api.post('/v1/reason', { ...REQUEST, max_tokens: 64 }, key);
    expect(duplicate.status).toBe(409);
    expect(duplicate.headers.get('retry-after')).toBe('1');
    expect(((await duplicate.json()) as any).error).toMatchObject({ code: 'idempotency_request_in_progress', param: 'Idempotency-Key' });
    const chunks = await sseChunks(running);
    expect(chunks[chunks.length - 1].object).toBe('reason.vote');
  }, 60_000);

  it('frees_the_key_of_an_aborted_stream_so_a_retry_runs', async () => {
    const key = { 'idempotency-key': 'reason-stream-3' };
    const aborted = await api.post('/v1/reason', { ...REQUEST, max_tokens: 64 }, key);
    const reader = aborted.body!.getReader();
    await reader.read();
    await reader.cancel();
    const retry = await api.post('/v1/reason', { ...REQUEST, max_tokens: 64 }, key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect((await sseChunks(retry)).at(-1).object).toBe('reason.vote');
  }, 60_000);
});
