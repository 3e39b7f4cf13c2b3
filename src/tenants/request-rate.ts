/**
 * Requests per minute, counted in the database so that every Workers isolate and Node process sees one count:
 * a fixed one-minute window per tenant (windows start at multiples of 60 s since the epoch), incremented by one
 * atomic `INSERT ... ON CONFLICT DO UPDATE SET requests = requests + 1 RETURNING requests`. The request that opens
 * a tenant's new window deletes that tenant's older windows, so the table holds about one row per active tenant.
 *
 * Rejected requests count too: a client that keeps hammering stays refused until its window ends (at most 60 s),
 * then starts a fresh window.
 */
import { and, eq, lt, sql } from 'drizzle-orm';
import { requestWindows } from '../db/schema';
import type { Db } from '../ports';
import { resetIn } from './limits';

export const REQUEST_WINDOW_MS = 60_000;

export interface RequestWindow {
  limit: number;
  /** Requests of this window, this one included. */
  used: number;
  /** When the window ends (ms since the epoch). */
  resetsAt: number;
}

export async function countRequest(db: Db, tenantId: string, now: number, limit: number): Promise<RequestWindow> {
  const windowStart = now - (now % REQUEST_WINDOW_MS);
  const [row] = await db
    .insert(requestWindows)
    .values({ tenantId, windowStart, requests: 1 })
    .onConflictDoUpdate({
      target: [requestWindows.tenantId, requestWindows.windowStart],
      set: { requests: sql`${requestWindows.requests} + 1` },
    })
    .returning({ requests: requestWindows.requests });
  const used = row!.requests;
  if (used === 1)
    await db.delete(requestWindows).where(and(eq(requestWindows.tenantId, tenantId), lt(requestWindows.windowStart, windowStart)));
  return { limit, used, resetsAt: windowStart + REQUEST_WINDOW_MS };
}

/** OpenAI's x-ratelimit-*-requests headers of a window, seen at `now`. */
export function requestRateHeaders(w: RequestWindow, now: number): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(w.limit),
    'x-ratelimit-remaining-requests': String(Math.max(0, w.limit - w.used)),
    'x-ratelimit-reset-requests': resetIn(w.resetsAt - now),
  };
}
