/**
 * Concurrent reasoning samples per tenant, across /v1/reason and /v1/chat/completions (a request holds its `n`).
 * A request reserves its samples with ONE statement before it runs:
 *
 *   INSERT INTO sample_reservations SELECT <id, tenant, n, expiry, now>
 *   WHERE (SELECT sum(samples) FROM sample_reservations WHERE tenant_id = ? AND expires_at > now) + n <= limit
 *   RETURNING id
 *
 * so concurrent requests (other isolates, other processes) can never together pass the limit, on D1 and SQLite
 * alike. The reservation is deleted when the request ends, for a stream when the stream ends (finished, failed or
 * aborted by the client). It expires RESERVATION_SECONDS after its last renewal, and a running request renews it
 * every third of that: a process that dies mid-request frees its tenant's samples within a minute instead of never.
 * Expired rows of a tenant are deleted with its next release.
 */
import { and, eq, gt, lt, or, sql } from 'drizzle-orm';
import type { Context } from 'hono';
import { sampleReservations } from '../db/schema';
import { badRequest } from '../errors';
import type { Deps } from '../ports';
import { rateLimited } from './limits';

export const RESERVATION_SECONDS = 60;
/** A refused request may retry soon: samples free up whenever any of the tenant's requests ends. */
const RETRY_AFTER_SECONDS = 1;

export interface SampleReservation {
  /** Frees the samples (idempotent). */
  release(): Promise<void>;
}

/** Samples the tenant holds now (unexpired reservations). */
export async function samplesInFlight(deps: Deps, tenantId: string): Promise<number> {
  const row = await deps.database.db
    .select({ total: sql<number>`coalesce(sum(${sampleReservations.samples}), 0)` })
    .from(sampleReservations)
    .where(and(eq(sampleReservations.tenantId, tenantId), gt(sampleReservations.expiresAt, deps.clock.now())))
    .get();
  return Number(row?.total ?? 0);
}

/**
 * Reserves `samples` for the tenant of the request, or throws: 400 naming `n` when one request asks for more than
 * the whole limit (it could never run), 429 `rate_limit_exceeded` when the tenant's running requests hold too many.
 */
export async function reserveSamples(c: Context, deps: Deps, tenantId: string, samples: number): Promise<SampleReservation> {
  const limit = deps.config.tenantLimits.concurrentSamples;
  if (samples > limit)
    throw badRequest(`n: must be at most ${limit}, this deployment's limit of concurrent samples per organization.`, 'n');
  const { db } = deps.database;
  const id = deps.ids.next('samples');
  const now = deps.clock.now();
  const held = sql`(select coalesce(sum(${sampleReservations.samples}), 0) from ${sampleReservations}
    where ${sampleReservations.tenantId} = ${tenantId} and ${sampleReservations.expiresAt} > ${now})`;
  // Column order of the table: id, tenant_id, samples, expires_at, created_at.
  const reserved = await db
    .insert(sampleReservations)
    .select(sql`select ${id}, ${tenantId}, ${samples}, ${now + RESERVATION_SECONDS * 1000}, ${now} where ${held} + ${samples} <= ${limit}`)
    .returning({ id: sampleReservations.id });
  if (reserved.length === 0) {
    const inFlight = await samplesInFlight(deps, tenantId);
    throw rateLimited(
      c,
      `Rate limit reached: this request needs ${samples} samples and this organization has ${inFlight} of its ${limit} concurrent samples in flight. Retry when a request ends, or lower n.`,
      {
        retryAfterSeconds: RETRY_AFTER_SECONDS,
        param: 'n',
        headers: {
          'x-ratelimit-limit-samples': String(limit),
          'x-ratelimit-remaining-samples': String(Math.max(0, limit - inFlight)),
        },
      },
    );
  }

  const where = eq(sampleReservations.id, id);
  const renew = setInterval(() => {
    db.update(sampleReservations)
      .set({ expiresAt: deps.clock.now() + RESERVATION_SECONDS * 1000 })
      .where(where)
      .then(undefined, (err: unknown) => console.error('sample reservation renewal failed:', err));
  }, (RESERVATION_SECONDS * 1000) / 3);
  // Node: a pending renewal must not keep a stopping process alive (Workers timers have no unref).
  (renew as { unref?: () => void }).unref?.();
  let released: Promise<void> | null = null;
  return {
    release() {
      clearInterval(renew);
      released ??= (async () => {
        const expired = and(eq(sampleReservations.tenantId, tenantId), lt(sampleReservations.expiresAt, deps.clock.now()));
        await db.delete(sampleReservations).where(or(where, expired));
      })();
      return released;
    },
  };
}
