/**
 * Carries out the job transitions of src/jobs/transitions.ts. Every caller goes through here: the user routes
 * (/v1/finetune: create, cancel, pause, resume), the worker routes (/internal: claim in ./claim.ts, heartbeat, pause
 * acknowledgement, finish, fail, checkpoints) and the lease sweep (./lease-expiry.ts).
 *
 * How one change is atomic on D1 (no interactive transactions) and SQLite alike: read the row, look the action up in
 * the table, then ONE `Database.batch` whose statements all carry the same guard, "the row is still as read" (id,
 * caller's scope, status, attempts):
 *
 *   INSERT INTO job_events SELECT <the event> FROM jobs WHERE <guard>     -- first: sees the row before the change
 *   (INSERT INTO <other rows> SELECT ... FROM jobs WHERE <guard>)          -- e.g. the result file of a finish
 *   UPDATE jobs SET <change> WHERE <guard> RETURNING *
 *
 * Nothing interleaves inside a batch, so the guard is true for all of them or for none: the change and its one event
 * are written together or not at all. When a concurrent change won, the UPDATE returns no row and the read is
 * repeated, so the answer (the new row, or 409 naming the current status) reflects the status that won.
 */
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { BatchItem } from 'drizzle-orm/batch';
import type { SQLiteUpdateSetSource } from 'drizzle-orm/sqlite-core';
import { checkpoints, jobEvents, jobs, type CheckpointFile, type CheckpointRow, type JobRow, type JobStatus } from '../db/schema';
import { ApiError, notFound } from '../errors';
import { fineTunedModelName } from '../models/names';
import type { Deps } from '../ports';
import { eventWhere, insertFromJobs, type NewEvent } from './guarded-writes';
import { writeResultFile } from './result-file';
import { missingOrLeaseLost, leaseLost, requireLease } from './store';
import { ACTION_VERBS, LEASED_STATUSES, nextStatus, sourcesOf, type JobAction } from './transitions';

type LifecycleDeps = Pick<Deps, 'database' | 'clock'>;

export function illegalTransition(action: JobAction, status: JobStatus) {
  return new ApiError(409, `Cannot ${ACTION_VERBS[action]} a job whose status is '${status}'.`, {
    code: 'invalid_job_status',
    param: 'job_id',
  });
}

interface Change {
  action: JobAction | ((job: JobRow) => JobAction);
  /** Which rows the caller may change: its tenant's (user routes) or the one its lease holds (worker routes). */
  scope: SQL;
  set?: (job: JobRow, to: JobStatus, now: number) => SQLiteUpdateSetSource<typeof jobs>;
  event: (job: JobRow, to: JobStatus) => NewEvent;
  /** More rows written with the change, each guarded by `where`. */
  also?: (where: SQL, job: JobRow, now: number) => BatchItem<'sqlite'>[];
  /** The error when no job is visible under `scope` (default 404 naming job_id). */
  missing?: () => Promise<ApiError> | ApiError;
  /** The error when the action is illegal from the job's status (default 409 invalid_job_status). */
  illegal?: (job: JobRow, action: JobAction) => ApiError;
}

/** Applies one change of the table to job `jobId` (see the module comment); returns the changed row. */
export async function transition(deps: LifecycleDeps, jobId: string, change: Change): Promise<JobRow> {
  const { db } = deps.database;
  for (let read = 0; read < 5; read++) {
    const job = await db.select().from(jobs).where(and(eq(jobs.id, jobId), change.scope)).get();
    if (!job) throw (await change.missing?.()) ?? notFound('fine-tuning job', jobId, 'job_id');
    const action = typeof change.action === 'function' ? change.action(job) : change.action;
    const to = nextStatus(action, job.status);
    if (!to) throw change.illegal?.(job, action) ?? illegalTransition(action, job.status);
    const now = deps.clock.now();
    const where = and(eq(jobs.id, job.id), change.scope, eq(jobs.status, job.status), eq(jobs.attempts, job.attempts))!;
    const results = await deps.database.batch([
      eventWhere(db, where, change.event(job, to), now),
      ...(change.also?.(where, job, now) ?? []),
      db
        .update(jobs)
        .set({ ...change.set?.(job, to, now), status: to, updatedAt: now })
        .where(where)
        .returning(),
    ]);
    const [row] = results[results.length - 1] as JobRow[];
    if (row) return row;
  }
  throw new ApiError(409, `Job '${jobId}' kept changing while this request tried to change it; retry.`, {
    code: 'job_changed_concurrently',
    param: 'job_id',
  });
}

// ---- user actions ----------------------------------------------------------------------------------------------

/** Writes a new job (already past its file checks) and its first events; `guards` join the batch (the job quota). */
export async function createJob(
  deps: LifecycleDeps,
  row: Omit<typeof jobs.$inferInsert, 'status'>,
  guards: BatchItem<'sqlite'>[] = [],
): Promise<void> {
  const { db } = deps.database;
  const now = row.createdAt;
  const event = (message: string, type: string, data: Record<string, unknown> | null) => ({
    jobId: row.id,
    level: 'info' as const,
    type,
    message,
    data,
    createdAt: now,
  });
  await deps.database.batch([
    db.insert(jobs).values({ ...row, status: nextStatus('create', 'validating_files')! }),
    db.insert(jobEvents).values([
      event(`Created fine-tuning job ${row.id} (${row.methodType}) on ${row.model}.`, 'message', null),
      event('Validated training and validation files.', 'status', { status: 'validating_files' }),
      event('Job queued; waiting for a GPU worker.', 'status', { status: 'queued' }),
    ]),
    ...guards,
  ]);
}

const byTenant = (tenantId: string) => eq(jobs.tenantId, tenantId);

export const cancelJob = (deps: LifecycleDeps, tenantId: string, jobId: string) =>
  transition(deps, jobId, {
    action: 'cancel',
    scope: byTenant(tenantId),
    set: (_job, _to, now) => ({ finishedAt: now }),
    event: () => ({ message: 'Job cancelled by the user.', data: { status: 'cancelled' } }),
  });

export const pauseJob = (deps: LifecycleDeps, tenantId: string, jobId: string) =>
  transition(deps, jobId, {
    action: 'pause',
    scope: byTenant(tenantId),
    event: (_job, to) => ({
      message: to === 'paused' ? 'Job paused.' : 'Pause requested; waiting for the worker to checkpoint.',
      data: { status: to },
    }),
  });

export const resumeJob = (deps: LifecycleDeps, tenantId: string, jobId: string) =>
  transition(deps, jobId, {
    action: 'resume',
    scope: byTenant(tenantId),
    event: (_job, to) => ({ message: `Job resumed (${to}).`, data: { status: to } }),
  });

// ---- worker actions (the caller holds the lease) -------------------------------------------------------------

function byLease(deps: LifecycleDeps, jobId: string, token: string) {
  return {
    scope: eq(jobs.leaseToken, token),
    missing: () => missingOrLeaseLost(deps.database.db, jobId),
    // Still leased: the action itself is illegal now (e.g. a pause the user withdrew); else the job moved on.
    illegal: (job: JobRow, action: JobAction) =>
      LEASED_STATUSES.includes(job.status) ? illegalTransition(action, job.status) : leaseLost(jobId),
  };
}

const releaseLease = { leaseToken: null, leaseExpiresAt: null } as const;

export type HeartbeatAnswer = { action: 'continue' | 'pause' | 'cancel'; status: JobStatus; leaseExpiresAt: number };

/**
 * Extends the lease of a running or pausing job (and records its progress): no event, the status stays. A job the
 * user cancelled answers `cancel` and its lease is released (the `stop` transition, with its event).
 */
export async function heartbeatJob(deps: Deps, jobId: string, token: string, trainedSteps?: number): Promise<HeartbeatAnswer> {
  const { db } = deps.database;
  const now = deps.clock.now();
  const expires = now + deps.config.leaseSeconds * 1000;
  const [job] = await db
    .update(jobs)
    .set({
      leaseExpiresAt: expires,
      updatedAt: now,
      ...(trainedSteps !== undefined ? { trainedSteps: sql`max(${jobs.trainedSteps}, ${trainedSteps})` } : {}),
    })
    .where(and(eq(jobs.id, jobId), eq(jobs.leaseToken, token), inArray(jobs.status, sourcesOf('heartbeat'))))
    .returning({ status: jobs.status });
  if (job) return { action: job.status === 'pausing' ? 'pause' : 'continue', status: job.status, leaseExpiresAt: expires };
  const stopped = await transition(deps, jobId, {
    action: 'stop',
    ...byLease(deps, jobId, token),
    illegal: () => leaseLost(jobId),
    set: () => releaseLease,
    event: (j) => ({ message: `Worker ${j.workerId ?? '(unnamed)'} stopped: the job was cancelled.`, data: { status: 'cancelled' } }),
  });
  return { action: 'cancel', status: stopped.status, leaseExpiresAt: now };
}

/** pausing -> paused once the worker has checkpointed. The claim gives its attempt back (pauses never use them up). */
export const ackPause = (deps: LifecycleDeps, jobId: string, token: string) =>
  transition(deps, jobId, {
    action: 'ack_pause',
    ...byLease(deps, jobId, token),
    set: (job) => ({ ...releaseLease, attempts: job.attempts - 1 }),
    event: () => ({ message: 'Job paused by its worker.', data: { status: 'paused' } }),
  });

export interface JobFailure {
  code: string;
  message: string;
  param: string | null;
}

/** A failure the worker reports: re-queued (`retry`) when retryable and attempts are left, else the job fails. */
export const failJob = (deps: LifecycleDeps, jobId: string, token: string, error: JobFailure, retryable: boolean) =>
  transition(deps, jobId, {
    action: (job) => (retryable && job.attempts < job.maxAttempts ? 'retry' : 'fail'),
    ...byLease(deps, jobId, token),
    set: (_job, to, now) => (to === 'failed' ? { ...releaseLease, error, finishedAt: now } : releaseLease),
    event: (job, to) =>
      to === 'failed'
        ? { level: 'error', message: `Job failed: ${error.message}`, data: { status: to, error } }
        : { level: 'warn', message: `Attempt ${job.attempts} failed (${error.message}); job re-queued.`, data: { status: to, error } },
  });

function noCheckpoint(jobId: string) {
  return new ApiError(409, `Job '${jobId}' has no checkpoint; register the final checkpoint before finishing.`, {
    code: 'no_checkpoint',
  });
}

/**
 * running | pausing -> succeeded after the final checkpoint: names the fine-tuned model, writes the step-metrics
 * result file (./result-file.ts; its blob first, its row in the batch) and sums the job's trained tokens.
 */
export async function finishJob(deps: Deps, jobId: string, token: string): Promise<JobRow> {
  const { db } = deps.database;
  const current = await requireLease(db, jobId, token, LEASED_STATUSES);
  const last = await db
    .select({ step: checkpoints.step })
    .from(checkpoints)
    .where(eq(checkpoints.jobId, jobId))
    .orderBy(sql`${checkpoints.step} desc`)
    .get();
  if (!last) throw noCheckpoint(jobId);
  const result = await writeResultFile(deps, current);
  try {
    return await transition(deps, jobId, {
      action: 'finish',
      ...byLease(deps, jobId, token),
      set: (job, _to, now) => ({
        ...releaseLease,
        fineTunedModel: fineTunedModelName(job),
        trainedSteps: sql`max(${jobs.trainedSteps}, ${last.step})`,
        trainedTokens: sql`(select sum(json_extract(${jobEvents.data}, '$.step_tokens')) from ${jobEvents}
          where ${jobEvents.jobId} = ${jobs.id} and ${jobEvents.type} = 'metrics')`,
        resultFiles: [result.id],
        finishedAt: now,
      }),
      event: (job) => ({
        message: `Job succeeded: ${fineTunedModelName(job)} (step ${last.step}).`,
        data: { status: 'succeeded', fine_tuned_model: fineTunedModelName(job), result_files: [result.id] },
      }),
      also: (where, _job, now) => [result.insert(where, now)],
    });
  } catch (err) {
    await deps.blobs.delete(result.blobKey).catch(() => undefined);
    throw err;
  }
}

/**
 * Registers a checkpoint whose blobs were verified: the row, the job's progress and a `checkpoint` event in one
 * batch, guarded by the lease. A step registered before (a retried call) writes nothing and answers the stored row.
 */
export async function registerCheckpoint(
  deps: Deps,
  job: JobRow,
  token: string,
  c: { id: string; step: number; metrics: Record<string, number>; files: CheckpointFile[]; blobPrefix: string },
): Promise<{ created: boolean; row: CheckpointRow }> {
  const { db } = deps.database;
  const now = deps.clock.now();
  const leased = and(eq(jobs.id, job.id), eq(jobs.leaseToken, token), inArray(jobs.status, [...LEASED_STATUSES]))!;
  const fresh = and(
    leased,
    sql`not exists (select 1 from ${checkpoints} where ${checkpoints.jobId} = ${jobs.id} and ${checkpoints.step} = ${c.step})`,
  )!;
  const [, inserted] = await deps.database.batch([
    eventWhere(db, fresh, { type: 'checkpoint', message: `Checkpoint saved at step ${c.step}.`, data: { step: c.step, checkpoint_id: c.id, metrics: c.metrics } }, now),
    insertFromJobs(
      db,
      checkpoints,
      {
        id: c.id,
        jobId: jobs.id,
        tenantId: jobs.tenantId,
        step: c.step,
        metrics: JSON.stringify(c.metrics),
        files: JSON.stringify(c.files),
        blobPrefix: c.blobPrefix,
        createdAt: now,
      },
      fresh,
    ).returning(),
    db
      .update(jobs)
      .set({ trainedSteps: sql`max(${jobs.trainedSteps}, ${c.step})`, updatedAt: now })
      .where(leased),
  ]);
  if (inserted[0]) return { created: true, row: inserted[0] };
  const existing = await db
    .select()
    .from(checkpoints)
    .where(and(eq(checkpoints.jobId, job.id), eq(checkpoints.step, c.step)))
    .get();
  if (!existing) throw await missingOrLeaseLost(db, job.id); // the lease was lost between the check and the batch
  return { created: false, row: existing };
}
