/**
 * Unfinished fine-tuning jobs per tenant (validating_files, queued, running, pausing, paused: a paused job keeps its
 * place, since resume needs no new check), counted at create. Two parts:
 * - `checkJobQuota` before the create: a cheap count, so a tenant at its limit costs no writes;
 * - `jobQuotaGuard` inside the create's atomic batch, after the job's inserts: deletes the new job (and its events)
 *   again when the tenant's unfinished jobs, the new one included, now exceed the limit. Concurrent creates thus
 *   never end above the limit on D1 or SQLite, and no worker can claim a job that is then taken back, because the
 *   insert and the guard commit together. `jobWasKept` tells the caller which way it went.
 */
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Context } from 'hono';
import { jobEvents, jobs, type JobStatus } from '../db/schema';
import type { Db, Deps } from '../ports';
import { rateLimited } from './limits';

export const UNFINISHED_STATUSES: JobStatus[] = ['validating_files', 'queued', 'running', 'pausing', 'paused'];
/** Jobs run for minutes to hours; clients should not spin on a full quota (the SDKs give up on retry-after > 30 s). */
const RETRY_AFTER_SECONDS = 60;

function unfinishedCount(tenantId: string): SQL {
  return sql`(select count(*) from ${jobs} where ${jobs.tenantId} = ${tenantId} and ${inArray(jobs.status, UNFINISHED_STATUSES)})`;
}

function quotaError(c: Context, limit: number, unfinished: number) {
  return rateLimited(
    c,
    `Rate limit reached: this organization has ${unfinished} unfinished fine-tuning jobs, its limit is ${limit}. ` +
      'Create more when a job finishes, or cancel one.',
    {
      retryAfterSeconds: RETRY_AFTER_SECONDS,
      headers: { 'x-ratelimit-limit-jobs': String(limit), 'x-ratelimit-remaining-jobs': String(Math.max(0, limit - unfinished)) },
    },
  );
}

async function countUnfinished(db: Db, tenantId: string): Promise<number> {
  const row = await db
    .select({ n: sql<number>`count(*)` })
    .from(jobs)
    .where(and(eq(jobs.tenantId, tenantId), inArray(jobs.status, UNFINISHED_STATUSES)))
    .get();
  return Number(row?.n ?? 0);
}

/** Throws the 429 when the tenant already holds its limit of unfinished jobs. */
export async function checkJobQuota(c: Context, deps: Deps, tenantId: string): Promise<void> {
  const limit = deps.config.tenantLimits.activeJobs;
  const unfinished = await countUnfinished(deps.database.db, tenantId);
  if (unfinished >= limit) throw quotaError(c, limit, unfinished);
}

/** Statements to append to the create's batch after inserting job `jobId`: they undo it when over the limit. */
export function jobQuotaGuard(db: Db, tenantId: string, jobId: string, limit: number) {
  const over = sql`${unfinishedCount(tenantId)} > ${limit}`;
  return [
    db.delete(jobEvents).where(and(eq(jobEvents.jobId, jobId), over)),
    db.delete(jobs).where(and(eq(jobs.id, jobId), over)),
  ] as const;
}

/** After the batch: throws the 429 when the guard removed the job again. */
export async function jobWasKept(c: Context, deps: Deps, tenantId: string, jobId: string): Promise<void> {
  const { db } = deps.database;
  const kept = await db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId)).get();
  if (!kept) throw quotaError(c, deps.config.tenantLimits.activeJobs, await countUnfinished(db, tenantId));
}
