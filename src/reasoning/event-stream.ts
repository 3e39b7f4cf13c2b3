/**
 * The server-sent event form of /v1/reason, /v1/chat/completions and /v1/completions: each route says how an
 * engine event becomes its chunks, this runs the samples and writes them, then the route's closing chunks and
 * `[DONE]`. An error after the stream started is sent as `data: {"error": {...}}` before [DONE] (the status is
 * already 200). The request's samples are held until the stream ends (finished, failed or aborted).
 *
 * A finished stream also leaves its replay on the context (`streamReplay`): the same chunks with each sample's text
 * in one delta, as a remote engine streams. The Idempotency-Key middleware stores it, so a retry of the key gets the
 * same result as a stream instead of a second run (src/middleware/idempotency.ts).
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ApiError, errorBody } from '../errors';
import type { GeneratedSample, GenerationEvent, GenerationHooks } from '../engine/types';
import type { AppEnv } from '../router';
import type { SampleReservation } from '../tenants/sample-budget';

export interface StreamedRun<R> {
  id: string; // for the log line of a failure
  opening?: unknown[]; // chunks before any event (chat's role deltas)
  run(hooks: GenerationHooks): Promise<R>;
  chunks(event: GenerationEvent): unknown[];
  closing(result: R): unknown[]; // after every sample (the vote, the usage)
  samples(result: R): GeneratedSample[]; // what the replay shows, in choice order
}

/** A finished sample as the events of one delta per phase, then sample_done. */
export function sampleEvents(sample: GeneratedSample): GenerationEvent[] {
  const events: GenerationEvent[] = [];
  if (sample.reasoning) events.push({ type: 'delta', sample: sample.sample, phase: 'reasoning', text: sample.reasoning });
  if (sample.answer || sample.logprobs?.length) {
    const logprobs = sample.logprobs?.length ? { logprobs: sample.logprobs } : {};
    events.push({ type: 'delta', sample: sample.sample, phase: 'answer', text: sample.answer, ...logprobs });
  }
  events.push({ type: 'sample_done', sample });
  return events;
}

const sse = (data: unknown) => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

export function eventStream<R>(c: Context<AppEnv>, reservation: SampleReservation, s: StreamedRun<R>) {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    let writes = Promise.resolve();
    const send = (data: unknown) => {
      writes = writes.then(() => stream.writeSSE({ data: typeof data === 'string' ? data : JSON.stringify(data) }));
    };
    for (const chunk of s.opening ?? []) send(chunk);
    try {
      const result = await s.run({ onEvent: (event) => s.chunks(event).forEach(send), signal: abort.signal });
      const closing = s.closing(result);
      closing.forEach(send);
      if (!abort.signal.aborted) {
        const replayed = s.samples(result).flatMap(sampleEvents).flatMap((event) => s.chunks(event));
        c.set('streamReplay', [...(s.opening ?? []), ...replayed, ...closing, '[DONE]'].map(sse).join(''));
      }
    } catch (error) {
      if (!(error instanceof ApiError)) console.error(`[${s.id}] stream failed`, error);
      send(
        error instanceof ApiError
          ? errorBody(error.status, error.message, error.opts)
          : errorBody(500, 'Internal server error.', { code: 'internal_error' }),
      );
    }
    send('[DONE]');
    await writes.finally(() => reservation.release());
  });
}
