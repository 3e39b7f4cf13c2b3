/**
 * Fair claiming: which queued job a worker's claim takes. Round-robin across tenants, then oldest first within a
 * tenant, so one tenant's thousand queued jobs cannot starve another tenant's one:
 *
 *   1. ONE conditional `UPDATE jobs ... WHERE id = (<the pick>) AND status = 'queued' RETURNING`, where the pick is
 *      the oldest queued job of the tenant whose last claim is the oldest (`tenants.last_claim_seq`, never claimed
 *      first). Atomic on D1 and SQLite: two concurrent claims never get the same job.
 *   2. The tenant's `last_claim_seq` becomes one more than the largest so far, which sends it to the back of the
 *      round. A sequence, not a time, so that claims within one millisecond (or clocks of other isolates) still
 *      rotate. This second statement is outside the atomic claim: a claim racing in between may pick the same
 *      tenant once more (a fairness blip, never a double claim).
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { jobs, tenants, type JobRow } from '../db/schema';
import type { Db } from '../ports';

export interface ClaimArgs {
  now: number;
  leaseToken: string;
  leaseMs: number;
  workerId: string;
  /** Only jobs on these base models (the worker's list), or any model. */
  models?: string[];
}

/** Claims the next job for a worker (queued -> running, attempts + 1), or null when none is queued. */
export async function claimNextJob(db: Db, args: ClaimArgs): Promise<JobRow | null> {
  const pick = db
    .select({ id: jobs.id })
    .from(jobs)
    .innerJoin(tenants, eq(tenants.id, jobs.tenantId))
    .where(and(eq(jobs.status, 'queued'), args.models ? inArray(jobs.model, args.models) : undefined))
    .orderBy(sql`coalesce(${tenants.lastClaimSeq}, 0)`, asc(jobs.createdAt), asc(jobs.id))
    .limit(1);
  const [job] = await db
    .update(jobs)
    .set({
      status: 'running',
      leaseToken: args.leaseToken,
      leaseExpiresAt: args.now + args.leaseMs,
      workerId: args.workerId,
      attempts: sql`${jobs.attempts} + 1`,
      startedAt: sql`coalesce(${jobs.startedAt}, ${args.now})`,
      updatedAt: args.now,
    })
    .where(and(inArray(jobs.id, pick), eq(jobs.status, 'queued')))
    .returning();
  if (!job) return null;
  await db
    .update(tenants)
    .set({ lastClaimSeq: sql`(select coalesce(max(t.last_claim_seq), 0) + 1 from ${tenants} as t)` })
    .where(eq(tenants.id, job.tenantId));
  return job;
}
