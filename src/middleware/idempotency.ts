/**
 * `Idempotency-Key` on every POST. Keys live per scope (tenant, or the worker) for 24 hours:
 * - first request with a key: runs, and a 2xx response (status, content type, body) is stored;
 *   a non-2xx response is not stored, so the client may fix the request and retry with the same key;
 *   an event stream (`text/event-stream`) keeps the key reserved until it ends, and then stores the replay its
 *   handler left (`streamReplay`: the finished result as a stream, see reasoning/event-stream.ts); a stream that
 *   failed, was aborted or left no replay releases the key;
 * - same key, same method + path + body: the stored response again, with `idempotent-replayed: true`;
 * - same key, another request: 409 `idempotency_key_reused`;
 * - same key while the first request still runs: 409 `idempotency_request_in_progress` with retry-after.
 * The fingerprint hashes method, path and body. JSON bodies are small (limited) and read up front. A streaming
 * upload is fingerprinted by its handler from what it means (purpose, filename, SHA-256 of the file), because a
 * multipart body differs byte-wise between retries (random boundary); for a key already used, the handler runs in
 * "probe" mode (validates and hashes the stream, stores nothing) and the middleware then replays or answers 409.
 */
import { and, eq, isNull, lt } from 'drizzle-orm';
import type { Context, MiddlewareHandler } from 'hono';
import { idempotencyKeys } from '../db/schema';
import { ApiError } from '../errors';
import { sha256Hex } from '../lib/hash';
import type { Deps } from '../ports';
import type { AppEnv } from '../router';

/** Placeholder fingerprint of an upload whose handler has not finished yet. */
const PENDING_UPLOAD = 'pending-upload';
const KEY_RE = /^[\x21-\x7e]{1,255}$/;
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/**
 * While its request runs, a reservation is touched every RESERVATION_TOUCH_MS; one left untouched for ABANDONED_MS
 * belongs to a request whose process died (SIGKILL, crash, a Worker isolate evicted), and the key becomes usable
 * again. On Node, start-up also releases every reservation at once (releaseIdempotencyReservations): no request
 * of the dead process can still be running.
 */
export const RESERVATION_TOUCH_MS = 15_000;
export const ABANDONED_MS = 60_000;

const fingerprintOf = (c: Context, bodySha: string) => {
  const url = new URL(c.req.url);
  return sha256Hex(`${c.req.method}\n${url.pathname}${url.search}\n${bodySha}`);
};

/**
 * `streaming(c)` tells which requests carry a large body that must not be read up front; their handlers set
 * `uploadFingerprint` and honour `idempotencyProbe`.
 */
export function idempotency(streaming: (c: Context) => boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const key = c.req.header('idempotency-key');
    if (key === undefined) return next();
    if (!KEY_RE.test(key))
      throw new ApiError(400, 'Idempotency-Key: must be 1-255 printable ASCII characters.', {
        param: 'Idempotency-Key',
        code: 'invalid_idempotency_key',
      });
    const deps = c.get('deps');
    const { db } = deps.database;
    const scope = c.get('idempotencyScope');
    const isStreaming = streaming(c);
    const now = deps.clock.now();
    const fingerprint = isStreaming ? null : fingerprintOf(c, sha256Hex(new Uint8Array(await c.req.arrayBuffer())));
    const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));

    let existing = await db.select().from(idempotencyKeys).where(where).get();
    if (existing && existing.statusCode === null && existing.createdAt < now - ABANDONED_MS) {
      await db.delete(idempotencyKeys).where(and(where, lt(idempotencyKeys.createdAt, now - ABANDONED_MS)));
      existing = undefined;
    }
    if (existing && fingerprint !== null) return replayOrConflict(existing, fingerprint);
    if (existing) {
      if (existing.statusCode === null) throw inProgress();
      c.set('idempotencyProbe', true);
      await next();
      if (c.res.status >= 300) return; // the probe's own error (e.g. a bad JSONL line) stands
      const replay = replayOrConflict(existing, c.get('uploadFingerprint') ?? '');
      c.res = undefined as never; // drop the probe's placeholder without merging its headers
      c.res = replay;
      return;
    }

    const reserved = await db
      .insert(idempotencyKeys)
      .values({ scope, key, fingerprint: fingerprint ?? PENDING_UPLOAD, createdAt: now })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (reserved.length === 0) throw inProgress();

    const touch = setInterval(() => {
      db.update(idempotencyKeys)
        .set({ createdAt: deps.clock.now() })
        .where(and(where, isNull(idempotencyKeys.statusCode)))
        .run()
        .catch(() => undefined); // a missed touch only shortens the reservation's life
    }, RESERVATION_TOUCH_MS);
    let settledByStream = false;
    try {
      await next();
      if (fingerprint !== null && c.res?.status === 200 && isEventStream(c.res) && c.res.body) {
        // the handler returned as the stream began: hold the key until the stream ends
        c.res = whenStreamEnds(c.res, async (completed) => {
          clearInterval(touch);
          await settleStream(deps, scope, key, fingerprint, completed ? c.get('streamReplay') : undefined);
        });
        settledByStream = true;
      }
    } finally {
      if (!settledByStream) {
        clearInterval(touch);
        await settle(deps, c, scope, key, fingerprint ?? c.get('uploadFingerprint') ?? null);
      }
    }
  };
}

const isEventStream = (res: Response) => res.headers.get('content-type')?.startsWith('text/event-stream') ?? false;

/**
 * The same response, whose body calls `onEnd(true)` after its last chunk (before the client sees the end) and
 * `onEnd(false)` when the client goes away or the stream fails.
 */
function whenStreamEnds(res: Response, onEnd: (completed: boolean) => Promise<void>): Response {
  const reader = res.body!.getReader();
  let ended = false;
  const end = async (completed: boolean) => {
    if (ended) return;
    ended = true;
    await onEnd(completed).catch((error) => console.error('idempotency: settling a stream failed', error));
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (!done) return controller.enqueue(value);
        await end(true);
        controller.close();
      } catch (error) {
        await end(false);
        controller.error(error);
      }
    },
    async cancel(reason) {
      await end(false);
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, headers: res.headers });
}

/** Stores a finished stream's replay under its key, or releases the key when there is none. */
async function settleStream(deps: Deps, scope: string, key: string, fingerprint: string, replay: string | undefined) {
  const { db } = deps.database;
  const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));
  if (replay === undefined) {
    await db.delete(idempotencyKeys).where(where);
    return;
  }
  await db
    .update(idempotencyKeys)
    .set({ fingerprint, statusCode: 200, contentType: 'text/event-stream', body: replay })
    .where(where);
}

async function settle(
  deps: Deps,
  c: Context,
  scope: string,
  key: string,
  fingerprint: string | null,
) {
  const { db } = deps.database;
  const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));
  const res = c.res;
  // an event stream that reaches here is not a finished 200 stream of a JSON request (see whenStreamEnds): not stored
  const streamed = res ? isEventStream(res) : false;
  if (!res || res.status < 200 || res.status >= 300 || fingerprint === null || streamed) {
    await db.delete(idempotencyKeys).where(where);
    return;
  }
  const body = await res.clone().text();
  await db
    .update(idempotencyKeys)
    .set({ fingerprint, statusCode: res.status, contentType: res.headers.get('content-type'), body })
    .where(where);
}

function inProgress() {
  return new ApiError(409, 'A request with this Idempotency-Key is still in progress; retry later.', {
    code: 'idempotency_request_in_progress',
    param: 'Idempotency-Key',
    retryAfter: 1,
  });
}

/**
 * Releases every in-progress reservation. Only for start-up of a process that is the database's sole API server
 * (the Node entry): the requests that held them died with the previous process.
 */
export async function releaseIdempotencyReservations(deps: Pick<Deps, 'database'>): Promise<number> {
  const released = await deps.database.db
    .delete(idempotencyKeys)
    .where(isNull(idempotencyKeys.statusCode))
    .returning({ key: idempotencyKeys.key });
  return released.length;
}

function replayOrConflict(row: typeof idempotencyKeys.$inferSelect, fingerprint: string): Response {
  if (row.fingerprint !== fingerprint && row.fingerprint !== PENDING_UPLOAD)
    throw new ApiError(409, 'This Idempotency-Key was already used with a different request.', {
      code: 'idempotency_key_reused',
      param: 'Idempotency-Key',
    });
  if (row.statusCode === null) throw inProgress();
  const headers = new Headers({ 'idempotent-replayed': 'true' });
  if (row.contentType) headers.set('content-type', row.contentType);
  return new Response(row.body, { status: row.statusCode, headers });
}

/** Forgets keys older than the TTL (run by the maintenance sweep). */
export async function purgeIdempotencyKeys(deps: Deps): Promise<void> {
  await deps.database.db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, deps.clock.now() - IDEMPOTENCY_TTL_MS));
}
