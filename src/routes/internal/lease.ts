/** Lease checks and signed download lists shared by the /internal handlers. */
import { and, eq, inArray } from 'drizzle-orm';
import { jobs, type JobRow, type JobStatus } from '../../db/schema';
import { ApiError, notFound } from '../../errors';
import type { Deps, Db } from '../../ports';

export const leaseLost = (jobId: string) =>
  new ApiError(409, `The lease on job '${jobId}' is no longer held by this worker; stop working on it.`, {
    code: 'lease_lost',
    param: 'lease_token',
  });

/** The job when `token` is its current lease and its status is one of `statuses`; else 404 / 409 lease_lost. */
export async function requireLease(db: Db, jobId: string, token: string, statuses: readonly JobStatus[]): Promise<JobRow> {
  const job = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, jobId), eq(jobs.leaseToken, token), inArray(jobs.status, statuses as JobStatus[])))
    .get();
  if (job) return job;
  const exists = await db.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId)).get();
  if (!exists) throw notFound('fine-tuning job', jobId, 'job_id');
  throw leaseLost(jobId);
}

/** Signed GET URLs for a list of blobs. */
export async function signedFiles(
  deps: Deps,
  origin: string,
  expiresAt: number,
  items: { name: string; bytes: number; sha256: string; key: string }[],
) {
  return Promise.all(
    items.map(async ({ key, ...f }) => ({
      ...f,
      url: await deps.blobUrls.sign({ key, method: 'GET', expiresAt, origin }),
    })),
  );
}
