/**
 * Fair claiming: which queued job a worker's claim takes, and the claim itself (the `claim` transition of
 * ./transitions.ts). Round-robin across tenants, then oldest first within a tenant, so one tenant's thousand queued
 * jobs cannot starve another tenant's one. ONE atomic batch:
 *
 *   1. `UPDATE jobs ... WHERE id = (<the pick>) AND status = 'queued' RETURNING`, where the pick is the oldest queued
 *      job of the tenant whose last claim is the oldest (`tenants.last_claim_seq`, never claimed first) among the jobs
 *      the worker can run (its base models, at most its device count: `jobs.devices`); it sets a
 *      fresh random lease token. Two concurrent claims never get the same job.
 *   2. The claim's event, `INSERT ... SELECT ... FROM jobs WHERE lease_token = <that token>`: written exactly when 1
 *      took a job (the token is new, so it matches that job only).
 *   3. That tenant's `last_claim_seq` becomes one more than the largest so far, which sends it to the back of the
 *      round. A sequence, not a time, so that claims within one millisecond (or clocks of other isolates) still
 *      rotate. In the same batch as the claim, so the round-robin stamp and the claim commit together.
 */
import { and, asc, eq, inArray, lte, sql } from 'drizzle-orm';
import { checkpoints, jobs, tenants, type JobRow } from '../db/schema';
import type { Database } from '../ports';
import { eventWhere } from './guarded-writes';
import { nextStatus, sourcesOf } from './transitions';

export interface ClaimArgs {
  now: number;
  leaseToken: string;
  leaseMs: number;
  workerId: string;
  /** Only jobs on these base models (the worker's list), or any model. */
  models?: string[];
  /** The worker's device count: only jobs that need at most this many (default 1). */
  devices?: number;
}

/** Claims the next job for a worker (queued -> running, attempts + 1), or null when none is queued. */
export async function claimNextJob(database: Database, args: ClaimArgs): Promise<JobRow | null> {
  const { db } = database;
  const queued = inArray(jobs.status, sourcesOf('claim'));
  const pick = db
    .select({ id: jobs.id })
    .from(jobs)
    .innerJoin(tenants, eq(tenants.id, jobs.tenantId))
    .where(and(queued, lte(jobs.devices, args.devices ?? 1), args.models ? inArray(jobs.model, args.models) : undefined))
    .orderBy(sql`coalesce(${tenants.lastClaimSeq}, 0)`, asc(jobs.createdAt), asc(jobs.id))
    .limit(1);
  const claimed = eq(jobs.leaseToken, args.leaseToken);
  const resumeStep = sql`(select max(${checkpoints.step}) from ${checkpoints} where ${checkpoints.jobId} = ${jobs.id})`;
  const [[job]] = await database.batch([
    db
      .update(jobs)
      .set({
        status: nextStatus('claim', 'queued')!,
        leaseToken: args.leaseToken,
        leaseExpiresAt: args.now + args.leaseMs,
        workerId: args.workerId,
        attempts: sql`${jobs.attempts} + 1`,
        startedAt: sql`coalesce(${jobs.startedAt}, ${args.now})`,
        updatedAt: args.now,
      })
      .where(and(inArray(jobs.id, pick), queued))
      .returning(),
    eventWhere(
      db,
      claimed,
      {
        message: sql`${`Worker ${args.workerId} started attempt `} || ${jobs.attempts}
          || coalesce(' from checkpoint step ' || ${resumeStep}, '') || '.'`,
        data: sql`json_object('status', 'running', 'attempt', ${jobs.attempts}, 'resume_step', ${resumeStep})`,
      },
      args.now,
    ),
    db
      .update(tenants)
      .set({ lastClaimSeq: sql`(select coalesce(max(t.last_claim_seq), 0) + 1 from ${tenants} as t)` })
      .where(sql`${tenants.id} = (select ${jobs.tenantId} from ${jobs} where ${claimed})`),
  ]);
  return job ?? null;
}
