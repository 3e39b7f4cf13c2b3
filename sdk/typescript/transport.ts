/**
 * The SDK's fetch: adds an `Idempotency-Key` to every POST that has none (so a retried POST is applied once), and
 * retries 429, 503 and 409-with-retry-after (the same idempotency key still running) after `retry-after` seconds,
 * or an exponential backoff when the header is absent. The same key travels with every retry of a request.
 */
export interface TransportOptions {
  fetch?: (input: Request) => Promise<Response>;
  /** Retries after the first attempt (default 2). */
  maxRetries?: number;
  /** Add an Idempotency-Key to POSTs without one (default true). */
  idempotencyKeys?: boolean;
  /** Longest wait between attempts in ms (default 30 000); a longer retry-after is not waited for. */
  maxRetryDelayMs?: number;
  /** First backoff in ms when the server gives no retry-after (default 500, doubled per retry). */
  baseDelayMs?: number;
}

const RETRYABLE = new Set([429, 503]);

/** retry-after as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function sleep(ms: number, signal: AbortSignal) {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function newIdempotencyKey(): string {
  return `sdk-${crypto.randomUUID()}`;
}

/**
 * Sends the request `make(attempt, last)` builds, and again after a retryable answer. Building each attempt afresh
 * lets uploads re-read their file instead of buffering it (a cloned Request tees, and so holds, the whole body).
 */
export function createSender(opts: TransportOptions = {}) {
  const send = opts.fetch ?? ((r: Request) => globalThis.fetch(r));
  const maxRetries = opts.maxRetries ?? 2;
  const maxDelay = opts.maxRetryDelayMs ?? 30_000;
  const baseDelay = opts.baseDelayMs ?? 500;
  return async (make: (attempt: number, last: boolean) => Request): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= maxRetries;
      const request = make(attempt, last);
      const res = await send(request);
      const retryable = RETRYABLE.has(res.status) || (res.status === 409 && res.headers.has('retry-after'));
      if (last || !retryable) return res;
      const wait = retryAfterMs(res.headers.get('retry-after')) ?? baseDelay * 2 ** attempt;
      if (wait > maxDelay) return res;
      await res.body?.cancel().catch(() => undefined);
      await sleep(wait, request.signal);
    }
  };
}

/** The fetch given to openapi-fetch: an Idempotency-Key on POSTs without one, then createSender's retries. */
export function createTransport(opts: TransportOptions = {}): (input: Request) => Promise<Response> {
  const sendWithRetries = createSender(opts);
  return async (input: Request) => {
    let request = input;
    if (request.method === 'POST' && opts.idempotencyKeys !== false && !request.headers.has('idempotency-key')) {
      const headers = new Headers(request.headers);
      headers.set('idempotency-key', newIdempotencyKey());
      request = new Request(request, { headers });
    }
    return sendWithRetries((_, last) => (last ? request : (request.clone() as Request)));
  };
}
