/**
 * Reading jobs as a caller may see them: a tenant its own jobs (404 otherwise), a worker the job whose lease it holds
 * (409 `lease_lost` once the job moved on). Changes go through src/jobs/lifecycle.ts.
 */
import { and, eq, inArray } from 'drizzle-orm';
import { jobs, type JobRow, type JobStatus } from '../db/schema';
import { ApiError, notFound } from '../errors';
import type { Db } from '../ports';

export async function getTenantJob(db: Db, tenantId: string, jobId: string): Promise<JobRow> {
  const job = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, jobId), eq(jobs.tenantId, tenantId)))
    .get();
  if (!job) throw notFound('fine-tuning job', jobId, 'job_id');
  return job;
}

export const leaseLost = (jobId: string) =>
  new ApiError(409, `The lease on job '${jobId}' is no longer held by this worker; stop working on it.`, {
    code: 'lease_lost',
    param: 'lease_token',
  });

/** 404 when no job has this id, else 409 `lease_lost` (the job exists, but not under this worker's lease). */
export async function missingOrLeaseLost(db: Db, jobId: string): Promise<ApiError> {
  const exists = await db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId)).get();
  return exists ? leaseLost(jobId) : notFound('fine-tuning job', jobId, 'job_id');
}

/** The job when `token` is its current lease and its status is one of `statuses`; else 404 / 409 lease_lost. */
export async function requireLease(db: Db, jobId: string, token: string, statuses: readonly JobStatus[]): Promise<JobRow> {
  const job = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, jobId), eq(jobs.leaseToken, token), inArray(jobs.status, statuses as JobStatus[])))
    .get();
  if (job) return job;
  throw await missingOrLeaseLost(db, jobId);
}
