/**
 * Where a job's checkpoint files live in the blob store, and when a signed upload to them is still allowed.
 *
 * Checkpoint blobs are write-once: a worker gets signed PUT URLs for one step's files, uploads each file once, then
 * registers the step. An upload is refused when the key already holds a blob, when the step is registered, or when
 * the job no longer runs (cancelled, paused, finished, or back in the queue after a lost lease), or when another
 * attempt holds the job (the URL names the attempt it was issued to). So a leaked URL
 * cannot overwrite a registered checkpoint or write into a job that has ended, even before the URL expires.
 */
import { and, eq } from 'drizzle-orm';
import { checkpoints, jobs } from '../db/schema';
import type { Db } from '../ports';

/**
 * One folder per step and attempt: a later attempt that reaches a step an earlier (crashed) attempt uploaded but
 * never registered writes beside those files instead of over them.
 */
export const checkpointPrefix = (jobId: string, step: number, attempt: number) =>
  `checkpoints/${jobId}/step-${step}/attempt-${attempt}/`;
export const checkpointKey = (jobId: string, step: number, attempt: number, name: string) =>
  `${checkpointPrefix(jobId, step, attempt)}${name}`;

const CHECKPOINT_KEY_RE = /^checkpoints\/([^/]+)\/step-(\d+)\/attempt-(\d+)\/[^/]+$/;

/** The job statuses in which a worker may still upload checkpoint files. */
const UPLOADING_STATUSES = new Set(['running', 'pausing']);

/** Why a signed PUT to `key` is refused now, or null when it may proceed. */
export async function checkpointUploadRefusal(db: Db, key: string): Promise<string | null> {
  const match = CHECKPOINT_KEY_RE.exec(key);
  if (!match) return 'this key does not accept uploads';
  const [, jobId, stepText, attemptText] = match;
  const step = Number(stepText);
  const job = await db.select({ status: jobs.status, attempts: jobs.attempts }).from(jobs).where(eq(jobs.id, jobId)).get();
  if (!job || !UPLOADING_STATUSES.has(job.status)) return `job ${jobId} is no longer running`;
  if (job.attempts !== Number(attemptText)) return `job ${jobId} is now run by another attempt`;
  const registered = await db
    .select({ id: checkpoints.id })
    .from(checkpoints)
    .where(and(eq(checkpoints.jobId, jobId), eq(checkpoints.step, step)))
    .get();
  if (registered) return `the checkpoint of step ${step} is already registered`;
  return null;
}
