/**
 * `Idempotency-Key` on every POST. Keys live per scope (tenant, or the worker) for 24 hours:
 * - first request with a key: runs, and a 2xx response (status, content type, body) is stored;
 *   a non-2xx response is not stored, so the client may fix the request and retry with the same key;
 * - same key, same method + path + body: the stored response again, with `idempotent-replayed: true`;
 * - same key, another request: 409 `idempotency_key_reused`;
 * - same key while the first request still runs: 409 `idempotency_request_in_progress` with retry-after.
 * The fingerprint hashes the body. JSON bodies are small (limited) and read up front; streaming uploads are hashed
 * while the handler consumes them, so nothing large is buffered.
 */
import { and, eq, lt } from 'drizzle-orm';
import type { Context, MiddlewareHandler } from 'hono';
import { idempotencyKeys } from '../db/schema';
import { ApiError } from '../errors';
import { hashingStream, sha256Hex } from '../lib/hash';
import type { Deps } from '../ports';
import type { AppEnv } from '../router';

const KEY_RE = /^[\x21-\x7e]{1,255}$/;
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A reservation older than this belongs to a request that died; the key becomes usable again. */
const ABANDONED_MS = 10 * 60_000;

const fingerprintOf = (c: Context, bodySha: string) => {
  const url = new URL(c.req.url);
  return sha256Hex(`${c.req.method}\n${url.pathname}${url.search}\n${bodySha}`);
};

async function drainHash(body: ReadableStream<Uint8Array> | null): Promise<string> {
  const h = hashingStream();
  if (body) {
    const reader = body.pipeThrough(h.stream).getReader();
    while (!(await reader.read()).done) {
      /* hashing only */
    }
  }
  return h.digest();
}

/** `streaming(c)` tells which requests carry a large body that must not be read up front. */
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
    let fingerprint = isStreaming ? null : fingerprintOf(c, sha256Hex(new Uint8Array(await c.req.arrayBuffer())));
    const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));

    let existing = await db.select().from(idempotencyKeys).where(where).get();
    if (existing && existing.statusCode === null && existing.createdAt < now - ABANDONED_MS) {
      await db.delete(idempotencyKeys).where(and(where, lt(idempotencyKeys.createdAt, now - ABANDONED_MS)));
      existing = undefined;
    }
    if (existing) {
      fingerprint ??= fingerprintOf(c, await drainHash(c.req.raw.body));
      return replayOrConflict(existing, fingerprint);
    }

    const reserved = await db
      .insert(idempotencyKeys)
      .values({ scope, key, fingerprint: fingerprint ?? 'streaming', createdAt: now })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (reserved.length === 0) throw inProgress();

    let hasher: ReturnType<typeof hashingStream> | null = null;
    if (isStreaming && c.req.raw.body) {
      hasher = hashingStream();
      c.req.raw = new Request(c.req.raw, { body: c.req.raw.body.pipeThrough(hasher.stream), duplex: 'half' } as RequestInit);
    }
    try {
      await next();
    } finally {
      await settle(deps, c, scope, key, hasher, fingerprint);
    }
  };
}

async function settle(
  deps: Deps,
  c: Context,
  scope: string,
  key: string,
  hasher: ReturnType<typeof hashingStream> | null,
  fingerprint: string | null,
) {
  const { db } = deps.database;
  const where = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));
  const res = c.res;
  if (!res || res.status < 200 || res.status >= 300) {
    await db.delete(idempotencyKeys).where(where);
    return;
  }
  const fp = fingerprint ?? fingerprintOf(c, hasher ? hasher.digest() : sha256Hex(''));
  const body = await res.clone().text();
  await db
    .update(idempotencyKeys)
    .set({ fingerprint: fp, statusCode: res.status, contentType: res.headers.get('content-type'), body })
    .where(where);
}

function inProgress() {
  return new ApiError(409, 'A request with this Idempotency-Key is still in progress; retry later.', {
    code: 'idempotency_request_in_progress',
    param: 'Idempotency-Key',
    retryAfter: 1,
  });
}

function replayOrConflict(row: typeof idempotencyKeys.$inferSelect, fingerprint: string): Response {
  if (row.fingerprint !== fingerprint && row.fingerprint !== 'streaming')
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
