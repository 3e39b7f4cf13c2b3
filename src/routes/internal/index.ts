/**
 * The worker protocol: GPU workers pull fine-tuning jobs with a lease (worker token only). The exact protocol,
 * with the order of calls, is in docs/CONTRACTS.md "Worker protocol". The claim is in ./claim.ts, checkpoint
 * transfer in ./checkpoints.ts; this file has the calls a worker makes while it holds a lease.
 */
import { createRoute } from '@hono/zod-openapi';
import { jobEvents } from '../../db/schema';
import { errorResponses } from '../../errors';
import { ackPause, failJob, finishJob, heartbeatJob } from '../../jobs/lifecycle';
import { JobObject, toJobObject } from '../../jobs/objects';
import { requireLease } from '../../jobs/store';
import { createRouter } from '../../router';
import { IdempotencyHeaders, JobIdParam, seconds, workerSecurity } from '../common';
import { internalClaimRouter } from './claim';
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
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    const answer = await heartbeatJob(c.get('deps'), job_id, body.lease_token, body.trained_steps);
    return c.json({ action: answer.action, status: answer.status, lease_expires_at: seconds(answer.leaseExpiresAt) }, 200);
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
    const job = await ackPause(deps, c.req.valid('param').job_id, c.req.valid('json').lease_token);
    return c.json(toJobObject(job, deps.clock.now()), 200);
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
    const job = await finishJob(deps, c.req.valid('param').job_id, c.req.valid('json').lease_token);
    return c.json(toJobObject(job, deps.clock.now()), 200);
  },
);

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
    const body = c.req.valid('json');
    const error = { code: body.error.code, message: body.error.message, param: body.error.param ?? null };
    const job = await failJob(deps, c.req.valid('param').job_id, body.lease_token, error, body.retryable);
    return c.json(toJobObject(job, deps.clock.now()), 200);
  },
);
