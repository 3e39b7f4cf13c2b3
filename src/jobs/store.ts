/**
 * Job state changes shared by the user routes (/v1/finetune) and the worker routes (/internal).
 * Every status change is ONE conditional `UPDATE ... WHERE status IN (<legal sources>) RETURNING`, so concurrent
 * requests cannot both win, and it runs the same on D1 (no transactions) and SQLite. When the update matches no
 * row the job either does not exist for this caller (404) or is in a status the change is illegal from (409).
 *
 * Legal transitions:
 *   validating_files -> queued                         (create, once the files are checked)
 *   queued   -> running                                (worker claim; attempts + 1)
 *   running  -> pausing -> paused                      (user pause; worker acks after checkpointing; attempts - 1)
 *   queued   -> paused                                 (user pause before any worker took it)
 *   paused   -> queued, pausing -> running             (user resume)
 *   running | pausing -> succeeded | failed            (worker finish / fail)
 *   running  -> queued, pausing -> paused              (lease expired, attempts left; or a retryable failure)
 *   running | pausing -> failed                        (lease expired on the last attempt)
 *   any non-terminal -> cancelled                      (user cancel; a running worker learns it from its heartbeat)
 */
import { and, eq, inArray, type SQL } from 'drizzle-orm';
import type { SQLiteUpdateSetSource } from 'drizzle-orm/sqlite-core';
import { jobEvents, jobs, type JobRow, type JobStatus } from '../db/schema';
import { ApiError, notFound } from '../errors';
import type { Db } from '../ports';

export type NewEvent = {
  level?: 'info' | 'warn' | 'error';
  type?: string;
  message: string;
  data?: Record<string, unknown> | null;
};

/** Appends API-side events (no worker sequence number). */
export async function addJobEvents(db: Db, jobId: string, now: number, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db.insert(jobEvents).values(
    events.map((e) => ({
      jobId,
      seq: null,
      level: e.level ?? 'info',
      type: e.type ?? 'message',
      message: e.message,
      data: e.data ?? null,
      createdAt: now,
    })),
  );
}

export async function getTenantJob(db: Db, tenantId: string, jobId: string): Promise<JobRow> {
  const job = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, jobId), eq(jobs.tenantId, tenantId)))
    .get();
  if (!job) throw notFound('fine-tuning job', jobId, 'job_id');
  return job;
}

/**
 * Moves a job from one of `from` to a new state in one statement. `scope` narrows the match (tenant, lease).
 * Throws 404 when the job is not visible under `scope`, 409 naming the current status when the change is illegal.
 */
export async function transitionJob(
  db: Db,
  args: {
    jobId: string;
    scope: SQL | undefined;
    from: readonly JobStatus[];
    /** Column values; SQL expressions allowed (e.g. a CASE on the current status). */
    set: SQLiteUpdateSetSource<typeof jobs>;
    action: string;
    notFoundError?: () => ApiError;
  },
): Promise<JobRow> {
  const [row] = await db
    .update(jobs)
    .set(args.set)
    .where(and(eq(jobs.id, args.jobId), args.scope, inArray(jobs.status, args.from as JobStatus[])))
    .returning();
  if (row) return row;
  const current = await db
    .select({ status: jobs.status })
    .from(jobs)
    .where(and(eq(jobs.id, args.jobId), args.scope))
    .get();
  if (!current) throw args.notFoundError?.() ?? notFound('fine-tuning job', args.jobId, 'job_id');
  throw new ApiError(409, `Cannot ${args.action} a job whose status is '${current.status}'.`, {
    code: 'invalid_job_status',
    param: 'job_id',
  });
}
