/**
 * The worker protocol: GPU workers pull fine-tuning jobs with a lease (worker token only). The exact protocol,
 * with the order of calls, is in docs/CONTRACTS.md "Worker protocol". The claim is in ./claim.ts, checkpoint
 * transfer in ./checkpoints.ts; this file has the calls a worker makes while it holds a lease.
 */
import { createRoute } from '@hono/zod-openapi';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { checkpoints, jobEvents, jobs } from '../../db/schema';
import { ApiError, errorResponses } from '../../errors';
import { addJobEvents, transitionJob } from '../../jobs/store';
import { createRouter } from '../../router';
import { IdempotencyHeaders, seconds, workerSecurity } from '../common';
import { fineTunedModelName, JobIdParam, JobObject, toJobObject } from '../finetune/schemas';
import { internalClaimRouter } from './claim';
import { leaseLost, requireLease } from './lease';
import {
  EventsBody,
  EventsResponse,
  FailBody,
  FinishBody,
  HeartbeatBody,
  HeartbeatResponse,
  PauseAckBody,
} from './schemas';

export const internalRouter = createRouter();
internalRouter.route('/', internalClaimRouter);
/** Rows per INSERT of worker events: 7 bound parameters each, under D1's 100 per statement. */
const EVENTS_PER_STATEMENT = 14;
const tags = ['Worker protocol'];
const json = <T>(schema: T) => ({ 'application/json': { schema } });
const jobResponse = { description: 'The job after the change', content: json(JobObject) };

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/heartbeat',
    tags,
    summary: 'Extend the lease; learn whether to continue, pause or cancel',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(HeartbeatBody) } },
    responses: {
      200: { description: 'What to do next', content: json(HeartbeatResponse) },
      ...errorResponses(400, 401, 403, 404, 409, 415),
    },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    const now = deps.clock.now();
    const expires = now + deps.config.leaseSeconds * 1000;
    const [job] = await db
      .update(jobs)
      .set({
        leaseExpiresAt: expires,
        updatedAt: now,
        ...(body.trained_steps !== undefined ? { trainedSteps: sql`max(${jobs.trainedSteps}, ${body.trained_steps})` } : {}),
      })
      .where(and(eq(jobs.id, job_id), eq(jobs.leaseToken, body.lease_token), inArray(jobs.status, ['running', 'pausing'])))
      .returning({ status: jobs.status });
    if (job)
      return c.json(
        { action: job.status === 'pausing' ? ('pause' as const) : ('continue' as const), status: job.status, lease_expires_at: seconds(expires) },
        200,
      );
    // Cancelled while this worker held the lease: tell it to stop, and release the lease.
    const [cancelled] = await db
      .update(jobs)
      .set({ leaseToken: null, leaseExpiresAt: null, updatedAt: now })
      .where(and(eq(jobs.id, job_id), eq(jobs.leaseToken, body.lease_token), eq(jobs.status, 'cancelled')))
      .returning({ status: jobs.status });
    if (cancelled) return c.json({ action: 'cancel' as const, status: cancelled.status, lease_expires_at: seconds(now) }, 200);
    await requireLease(db, job_id, body.lease_token, ['running', 'pausing']);
    throw leaseLost(job_id);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/events',
    tags,
    summary: 'Append events (idempotent by sequence number)',
    description: 'An event whose `seq` this job already has is ignored and counted as a duplicate.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(EventsBody) } },
    responses: {
      200: { description: 'How many were new', content: json(EventsResponse) },
      ...errorResponses(400, 401, 403, 404, 409, 413, 415),
    },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    await requireLease(db, job_id, body.lease_token, ['running', 'pausing', 'cancelled']);
    const now = deps.clock.now();
    const rows = body.events.map((e) => ({
      jobId: job_id,
      seq: e.seq,
      level: e.level,
      type: e.type,
      message: e.message,
      data: e.data ?? null,
      createdAt: now,
    }));
    // D1 binds at most 100 parameters per statement (7 per event row). Each chunk is idempotent on its own, so a
    // failure half-way is repaired by the worker's retry of the whole batch.
    let accepted = 0;
    for (let i = 0; i < rows.length; i += EVENTS_PER_STATEMENT) {
      const inserted = await db
        .insert(jobEvents)
        .values(rows.slice(i, i + EVENTS_PER_STATEMENT))
        .onConflictDoNothing()
        .returning({ id: jobEvents.id });
      accepted += inserted.length;
    }
    return c.json({ accepted, duplicates: body.events.length - accepted }, 200);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/pause',
    tags,
    summary: 'Acknowledge a pause (after writing a checkpoint)',
    description: 'pausing -> paused and the lease is released. 409 `invalid_job_status` if the user resumed meanwhile: keep training.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(PauseAckBody) } },
    responses: { 200: jobResponse, ...errorResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const { lease_token } = c.req.valid('json');
    await requireLease(db, job_id, lease_token, ['running', 'pausing']);
    const now = deps.clock.now();
    const job = await transitionJob(db, {
      jobId: job_id,
      scope: eq(jobs.leaseToken, lease_token),
      from: ['pausing'],
      // A pause the user asked for ends this claim on purpose: it gives its attempt back, so pause/resume cycles
      // never use up the attempts that guard against lost workers (the next claim counts it again).
      set: { status: 'paused', leaseToken: null, leaseExpiresAt: null, attempts: sql`${jobs.attempts} - 1`, updatedAt: now },
      action: 'pause',
      notFoundError: () => leaseLost(job_id),
    });
    await addJobEvents(db, job_id, now, [{ type: 'status', message: 'Job paused by its worker.', data: { status: 'paused' } }]);
    return c.json(toJobObject(job), 200);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/finish',
    tags,
    summary: 'Finish successfully (after the final checkpoint is registered)',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(FinishBody) } },
    responses: { 200: jobResponse, ...errorResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const { lease_token } = c.req.valid('json');
    const current = await requireLease(db, job_id, lease_token, ['running', 'pausing']);
    const last = await db.select({ step: checkpoints.step }).from(checkpoints).where(eq(checkpoints.jobId, job_id)).orderBy(desc(checkpoints.step)).get();
    if (!last) throw noCheckpoint(job_id);
    const now = deps.clock.now();
    const job = await transitionJob(db, {
      jobId: job_id,
      scope: eq(jobs.leaseToken, lease_token),
      from: ['running', 'pausing'],
      set: {
        status: 'succeeded',
        fineTunedModel: fineTunedModelName(current),
        trainedSteps: sql`max(${jobs.trainedSteps}, ${last.step})`,
        leaseToken: null,
        leaseExpiresAt: null,
        finishedAt: now,
        updatedAt: now,
      },
      action: 'finish',
      notFoundError: () => leaseLost(job_id),
    });
    await addJobEvents(db, job_id, now, [
      { type: 'status', message: `Job succeeded: ${job.fineTunedModel} (step ${last.step}).`, data: { status: 'succeeded', fine_tuned_model: job.fineTunedModel } },
    ]);
    return c.json(toJobObject(job), 200);
  },
);

function noCheckpoint(jobId: string) {
  return new ApiError(409, `Job '${jobId}' has no checkpoint; register the final checkpoint before finishing.`, {
    code: 'no_checkpoint',
  });
}

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/fail',
    tags,
    summary: 'Fail the job with an error the user can act on',
    description: '`retryable: true` puts the job back in the queue while attempts are left; otherwise it fails.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(FailBody) } },
    responses: { 200: jobResponse, ...errorResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    const current = await requireLease(db, job_id, body.lease_token, ['running', 'pausing']);
    const now = deps.clock.now();
    const error = { code: body.error.code, message: body.error.message, param: body.error.param ?? null };
    const retry = body.retryable && current.attempts < current.maxAttempts;
    const job = await transitionJob(db, {
      jobId: job_id,
      scope: eq(jobs.leaseToken, body.lease_token),
      from: ['running', 'pausing'],
      set: retry
        ? { status: sql`CASE ${jobs.status} WHEN 'pausing' THEN 'paused' ELSE 'queued' END`, leaseToken: null, leaseExpiresAt: null, updatedAt: now }
        : { status: 'failed', error, leaseToken: null, leaseExpiresAt: null, finishedAt: now, updatedAt: now },
      action: 'fail',
      notFoundError: () => leaseLost(job_id),
    });
    await addJobEvents(db, job_id, now, [
      {
        level: retry ? 'warn' : 'error',
        type: 'status',
        message: retry ? `Attempt ${current.attempts} failed (${error.message}); job re-queued.` : `Job failed: ${error.message}`,
        data: { status: job.status, error },
      },
    ]);
    return c.json(toJobObject(job), 200);
  },
);
