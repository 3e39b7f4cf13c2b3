/**
 * The TypeScript SDK: a typed client over openapi-fetch (paths and schemas generated from openapi/openapi.json)
 * with the helpers people need: reasoning (plain and streamed), file uploads from a path or a Blob, fine-tune jobs
 * (create / list / get / cancel / pause / resume, events paged or streamed, waiting for the end), models.
 *
 *   const api = new SoftReason({ apiKey: process.env.SOFT_REASON_API_KEY });
 *   const r = await api.reason({ model: 'tiny-arith', prompt: 'What is 2+3?', n: 8 });
 *
 * Failures throw SoftReasonError (status, error envelope, x-request-id). POSTs carry a fresh Idempotency-Key unless
 * one is given; 429/503 are retried after retry-after (src/transport.ts). `api.raw` is the openapi-fetch client.
 */
import createClient, { type Client } from 'openapi-fetch';
import { errorFromResponse, SoftReasonError, toSoftReasonError } from './errors';
import { sseMessages } from './sse';
import { createSender, createTransport, newIdempotencyKey, type TransportOptions } from './transport';
import {
  TERMINAL_STATUSES,
  type CreateFineTuningJob,
  type FileObject,
  type FineTuningJob,
  type FineTuningJobEvent,
  type FineTuningJobEventList,
  type EventsQuery,
  type ListQuery,
  type paths,
  type ReasonRequest,
  type ReasonResponse,
  type ReasonStreamChunk,
} from './types';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8787';

export interface SoftReasonOptions extends TransportOptions {
  apiKey?: string;
  /** Default http://127.0.0.1:8787 (the embedded stack). */
  baseUrl?: string;
  headers?: Record<string, string>;
}

export interface CallOptions {
  /** Your own Idempotency-Key (POST only); by default a fresh one per call, reused by its retries. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function unwrap<T>({ data, error, response }: Outcome<T>): T {
  if (!response.ok || error !== undefined) throw toSoftReasonError(response.status, error, response.headers.get('x-request-id'));
  return data as T;
}

const init = (o: CallOptions = {}) => ({
  signal: o.signal,
  headers: o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : undefined,
});

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

export class SoftReason {
  readonly raw: Client<paths>;
  readonly baseUrl: string;

  private readonly headers: Record<string, string>;
  private readonly sendWithRetries: ReturnType<typeof createSender>;
  private readonly idempotencyKeys: boolean;

  constructor(opts: SoftReasonOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.headers = { ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}), ...opts.headers };
    this.sendWithRetries = createSender(opts);
    this.idempotencyKeys = opts.idempotencyKeys !== false;
    this.raw = createClient<paths>({ baseUrl: this.baseUrl, fetch: createTransport(opts), headers: this.headers });
  }

  // ---- reasoning ----

  async reason(body: ReasonRequest, o?: CallOptions) {
    // The 200 answer is JSON here (stream: false); the schema also lists the event-stream form.
    return unwrap(await this.raw.POST('/v1/reason', { body: { ...body, stream: false }, ...init(o) })) as ReasonResponse;
  }

  /** `POST /v1/reason` with `stream: true`: yields each chunk; the last is the `reason.vote` chunk. */
  async *reasonStream(body: ReasonRequest, o?: CallOptions): AsyncGenerator<ReasonStreamChunk> {
    const { response, error } = await this.raw.POST('/v1/reason', { body: { ...body, stream: true }, parseAs: 'stream', ...init(o) });
    const requestId = response.headers.get('x-request-id');
    if (!response.ok || !response.body) throw toSoftReasonError(response.status, error, requestId);
    for await (const m of sseMessages(response.body)) {
      if (m.data === '[DONE]') return;
      const payload = JSON.parse(m.data);
      // An error after the stream started (the status is already 200) arrives as an envelope.
      if (payload.error) throw toSoftReasonError(500, payload, requestId);
      yield payload as ReasonStreamChunk;
    }
    throw new SoftReasonError(502, { message: 'The reasoning stream ended before [DONE].', type: 'stream_error', param: null, code: 'stream_truncated' }, requestId);
  }

  // ---- files ----

  /**
   * Uploads a JSONL dataset from a path (Node) or a Blob/File; the server validates it line by line as it streams.
   * A path is read lazily from disk, once per attempt (never held whole in memory), so big files can be retried.
   */
  async uploadFile(source: string | Blob, opts: CallOptions & { filename?: string } = {}): Promise<FileObject> {
    let blob: Blob;
    let filename = opts.filename;
    if (typeof source === 'string') {
      const { openAsBlob } = await import('node:fs');
      blob = await openAsBlob(source, { type: 'application/jsonl' });
      filename ??= source.split(/[\\/]/).pop();
    } else {
      blob = source;
      filename ??= (source as { name?: string }).name ?? 'train.jsonl';
    }
    const key = opts.idempotencyKey ?? (this.idempotencyKeys ? newIdempotencyKey() : undefined);
    const res = await this.sendWithRetries(() => {
      const form = new FormData();
      form.append('purpose', 'fine-tune');
      form.append('file', blob, filename);
      const headers = { ...this.headers, ...(key ? { 'idempotency-key': key } : {}) };
      return new Request(`${this.baseUrl}/v1/files`, { method: 'POST', headers, body: form, signal: opts.signal });
    });
    if (!res.ok) throw await errorFromResponse(res);
    return (await res.json()) as FileObject;
  }

  async listFiles(query: ListQuery = {}, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/files', { params: { query }, ...init(o) }));
  }

  async getFile(fileId: string, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/files/{file_id}', { params: { path: { file_id: fileId } }, ...init(o) }));
  }

  async deleteFile(fileId: string, o?: CallOptions) {
    return unwrap(await this.raw.DELETE('/v1/files/{file_id}', { params: { path: { file_id: fileId } }, ...init(o) }));
  }

  // ---- fine-tuning ----

  async createJob(body: CreateFineTuningJob, o?: CallOptions) {
    return unwrap(await this.raw.POST('/v1/finetune', { body, ...init(o) }));
  }

  async listJobs(query: ListQuery = {}, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/finetune', { params: { query }, ...init(o) }));
  }

  async getJob(jobId: string, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/finetune/{job_id}', { params: { path: { job_id: jobId } }, ...init(o) }));
  }

  async cancelJob(jobId: string, o?: CallOptions) {
    return unwrap(await this.raw.POST('/v1/finetune/{job_id}/cancel', { params: { path: { job_id: jobId } }, ...init(o) }));
  }

  async pauseJob(jobId: string, o?: CallOptions) {
    return unwrap(await this.raw.POST('/v1/finetune/{job_id}/pause', { params: { path: { job_id: jobId } }, ...init(o) }));
  }

  async resumeJob(jobId: string, o?: CallOptions) {
    return unwrap(await this.raw.POST('/v1/finetune/{job_id}/resume', { params: { path: { job_id: jobId } }, ...init(o) }));
  }

  async checkpoints(jobId: string, query: ListQuery = {}, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/finetune/{job_id}/checkpoints', { params: { path: { job_id: jobId }, query }, ...init(o) }));
  }

  /** One page of a job's events: newest first, or oldest first with `order: 'asc'` (`after` pages in that order). */
  async events(jobId: string, query: EventsQuery = {}, o?: CallOptions) {
    return unwrap(
      await this.raw.GET('/v1/finetune/{job_id}/events', { params: { path: { job_id: jobId }, query: { ...query, stream: 'false' } }, ...init(o) }),
    ) as FineTuningJobEventList;
  }

  /**
   * Follows a job's events as they happen (the SSE form of /events), from `after` (an event id) or the start, until
   * the job has finished and every event was delivered. Reconnects from the last event when the server closes a
   * long stream, so nothing is lost or repeated.
   */
  async *streamEvents(jobId: string, opts: { after?: string; signal?: AbortSignal } = {}): AsyncGenerator<FineTuningJobEvent> {
    let after = opts.after;
    for (;;) {
      const { response, error } = await this.raw.GET('/v1/finetune/{job_id}/events', {
        params: { path: { job_id: jobId }, query: { stream: 'true', ...(after ? { after } : {}) } },
        parseAs: 'stream',
        signal: opts.signal,
      });
      if (!response.ok || !response.body) throw toSoftReasonError(response.status, error, response.headers.get('x-request-id'));
      for await (const m of sseMessages(response.body)) {
        if (m.event === 'done') return;
        if (m.event !== 'event') continue;
        const event = JSON.parse(m.data) as FineTuningJobEvent;
        after = m.id ?? event.id;
        yield event;
      }
      await sleep(250, opts.signal);
    }
  }

  /** Polls the job until it succeeded, failed or was cancelled, and returns it (it does not throw on failure). */
  async waitForJob(
    jobId: string,
    opts: { pollMs?: number; timeoutMs?: number; signal?: AbortSignal; onStatus?: (job: FineTuningJob) => void } = {},
  ): Promise<FineTuningJob> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    let last: string | undefined;
    for (;;) {
      const job = await this.getJob(jobId, { signal: opts.signal });
      if (job.status !== last) opts.onStatus?.(job);
      last = job.status;
      if (TERMINAL_STATUSES.includes(job.status)) return job;
      if (Date.now() >= deadline) throw new Error(`waitForJob: ${jobId} is still ${job.status} after ${opts.timeoutMs} ms`);
      await sleep(Math.min(opts.pollMs ?? 2000, Math.max(0, deadline - Date.now())), opts.signal);
    }
  }

  // ---- models ----

  async listModels(o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/models', { ...init(o) }));
  }

  async getModel(model: string, o?: CallOptions) {
    return unwrap(await this.raw.GET('/v1/models/{model}', { params: { path: { model } }, ...init(o) }));
  }
}
