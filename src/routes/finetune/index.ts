/**
 * Fine-tuning jobs, mounted at `/v1/finetune` and at OpenAI's `/v1/fine_tuning/jobs`: create, list, retrieve,
 * cancel, pause, resume, events (page or server-sent events) and checkpoints. Tenant-scoped: another tenant's
 * job id answers 404. Status changes follow src/jobs/store.ts (illegal ones answer 409).
 */
import { createRoute } from '@hono/zod-openapi';
import { and, asc, desc, eq, gt, lt, sql } from 'drizzle-orm';
import { checkpoints, files, jobEvents, jobs } from '../../db/schema';
import { errorResponses, notFound } from '../../errors';
import { addJobEvents, getTenantJob, transitionJob } from '../../jobs/store';
import { createRouter } from '../../router';
import { checkJobQuota, jobQuotaGuard, jobWasKept } from '../../tenants/job-quota';
import { IdempotencyHeaders, ListQuery, bearerSecurity, page } from '../common';
import {
  CheckpointList,
  CreateJobBody,
  EventList,
  EventStreamItem,
  EventsQuery,
  JobIdParam,
  JobList,
  JobObject,
  parseEventCursor,
  toCheckpointObject,
  toEventObject,
  toJobObject,
} from './schemas';
import { streamJobEvents } from './sse';

export const finetuneRouter = createRouter();
const tags = ['Fine-tuning'];
const jobResponse = { description: 'The job', content: { 'application/json': { schema: JobObject } } };

function randomSeed(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo;
}

finetuneRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags,
    summary: 'Create a fine-tuning job (SofT-GRPO or GRPO)',
    description:
      'Checks the base model and the files, then queues the job; a GPU worker claims it. Every hyperparameter ' +
      'accepts "auto". Idempotency-Key is honoured. An organization holds a limited number of unfinished jobs ' +
      '(default 16); over it the answer is 429 with `x-ratelimit-limit-jobs` and `x-ratelimit-remaining-jobs`.',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, body: { required: true, content: { 'application/json': { schema: CreateJobBody } } } },
    responses: { 200: jobResponse, ...errorResponses(400, 401, 404, 409, 413, 415) },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const deps = c.get('deps');
    const { db } = deps.database;
    const tenantId = c.get('tenantId');
    const base = deps.config.baseModels.find((m) => m.id === body.model);
    if (!base) throw notFound('model', body.model, 'model');
    for (const param of ['training_file', 'validation_file'] as const) {
      const id = body[param];
      if (!id) continue;
      const file = await db
        .select({ id: files.id })
        .from(files)
        .where(and(eq(files.id, id), eq(files.tenantId, tenantId)))
        .get();
      if (!file) throw notFound('file', id, param);
    }
    await checkJobQuota(c, deps, tenantId);
    const now = deps.clock.now();
    const id = deps.ids.next('ftjob');
    const row = {
      id,
      tenantId,
      model: body.model,
      trainingFile: body.training_file,
      validationFile: body.validation_file ?? null,
      methodType: body.method.type,
      hyperparameters: body.method.hyperparameters as Record<string, unknown>,
      grader: body.grader as Record<string, unknown>,
      suffix: body.suffix ?? null,
      seed: body.seed ?? randomSeed(),
      metadata: body.metadata ?? null,
      status: 'queued' as const,
      maxAttempts: deps.config.maxAttempts,
      createdAt: now,
      updatedAt: now,
    };
    const event = (message: string, type = 'status', data: Record<string, unknown> | null = null) => ({
      jobId: id,
      level: 'info' as const,
      type,
      message,
      data,
      createdAt: now,
    });
    await deps.database.batch([
      db.insert(jobs).values(row),
      db.insert(jobEvents).values([
        event(`Created fine-tuning job ${id} (${body.method.type}) on ${body.model}.`, 'message'),
        event('Validated training and validation files.', 'status', { status: 'validating_files' }),
        event('Job queued; waiting for a GPU worker.', 'status', { status: 'queued' }),
      ]),
      ...jobQuotaGuard(db, tenantId, id, deps.config.tenantLimits.activeJobs),
    ]);
    await jobWasKept(c, deps, tenantId, id);
    return c.json(toJobObject(await getTenantJob(db, tenantId, id)), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags,
    summary: 'List fine-tuning jobs (newest first)',
    security: bearerSecurity,
    request: { query: ListQuery },
    responses: {
      200: { description: 'A page of jobs', content: { 'application/json': { schema: JobList } } },
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const { after, limit } = c.req.valid('query');
    const rows = await c
      .get('deps')
      .database.db.select()
      .from(jobs)
      .where(and(eq(jobs.tenantId, c.get('tenantId')), after ? lt(jobs.id, after) : undefined))
      .orderBy(desc(jobs.id))
      .limit(limit + 1);
    return c.json(page(rows.map(toJobObject), limit), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{job_id}',
    tags,
    summary: 'Retrieve a fine-tuning job',
    security: bearerSecurity,
    request: { params: JobIdParam },
    responses: { 200: jobResponse, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const job = await getTenantJob(c.get('deps').database.db, c.get('tenantId'), c.req.valid('param').job_id);
    return c.json(toJobObject(job), 200);
  },
);

const NOT_FINISHED = ['validating_files', 'queued', 'running', 'pausing', 'paused'] as const;

finetuneRouter.openapi(
  createRoute({
    method: 'post',
    path: '/{job_id}/cancel',
    tags,
    summary: 'Cancel a job',
    description: 'Any unfinished job can be cancelled; a running worker learns it from its next heartbeat.',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam },
    responses: { 200: jobResponse, ...errorResponses(401, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const now = deps.clock.now();
    const job = await transitionJob(db, {
      jobId: job_id,
      scope: eq(jobs.tenantId, c.get('tenantId')),
      from: NOT_FINISHED,
      set: { status: 'cancelled', finishedAt: now, updatedAt: now },
      action: 'cancel',
    });
    await addJobEvents(db, job.id, now, [{ type: 'status', message: 'Job cancelled by the user.', data: { status: 'cancelled' } }]);
    return c.json(toJobObject(job), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'post',
    path: '/{job_id}/pause',
    tags,
    summary: 'Pause a job',
    description:
      'A queued job becomes paused at once; a running one becomes pausing until its worker has written a checkpoint ' +
      'and acknowledged, then paused. Resume continues from the last checkpoint.',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam },
    responses: { 200: jobResponse, ...errorResponses(401, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const now = deps.clock.now();
    const job = await transitionJob(db, {
      jobId: c.req.valid('param').job_id,
      scope: eq(jobs.tenantId, c.get('tenantId')),
      from: ['queued', 'running'],
      set: { status: sql`CASE ${jobs.status} WHEN 'queued' THEN 'paused' ELSE 'pausing' END`, updatedAt: now },
      action: 'pause',
    });
    await addJobEvents(db, job.id, now, [
      { type: 'status', message: job.status === 'paused' ? 'Job paused.' : 'Pause requested; waiting for the worker to checkpoint.', data: { status: job.status } },
    ]);
    return c.json(toJobObject(job), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'post',
    path: '/{job_id}/resume',
    tags,
    summary: 'Resume a paused job',
    description: 'paused -> queued (a worker resumes from the last checkpoint); pausing -> running (pause withdrawn).',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam },
    responses: { 200: jobResponse, ...errorResponses(401, 404, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const now = deps.clock.now();
    const job = await transitionJob(db, {
      jobId: c.req.valid('param').job_id,
      scope: eq(jobs.tenantId, c.get('tenantId')),
      from: ['paused', 'pausing'],
      set: { status: sql`CASE ${jobs.status} WHEN 'paused' THEN 'queued' ELSE 'running' END`, updatedAt: now },
      action: 'resume',
    });
    await addJobEvents(db, job.id, now, [{ type: 'status', message: `Job resumed (${job.status}).`, data: { status: job.status } }]);
    return c.json(toJobObject(job), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{job_id}/events',
    tags,
    summary: 'List job events (oldest first), or stream them',
    description:
      'Events in the order they happened, `after` an event id. With `stream=true` the answer is a text/event-stream: ' +
      'one `event: event` per job event (its `id:` is the cursor), `: keep-alive` comments while idle, and a final ' +
      '`event: done` once the job finished. Reconnect with `after` or Last-Event-ID to resume.',
    security: bearerSecurity,
    request: { params: JobIdParam, query: EventsQuery },
    responses: {
      200: {
        description: 'A page of events, or an event stream',
        content: {
          'application/json': { schema: EventList },
          'text/event-stream': { schema: EventStreamItem },
        },
      },
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const { db } = c.get('deps').database;
    const job = await getTenantJob(db, c.get('tenantId'), c.req.valid('param').job_id);
    const q = c.req.valid('query');
    const cursorText = q.after ?? (q.stream === 'true' ? c.req.header('last-event-id') : undefined);
    const cursor = cursorText === undefined ? 0 : parseEventCursor(cursorText);
    if (cursor === null) throw notFound('event', cursorText!, 'after');
    if (q.stream === 'true') return streamJobEvents(c, job.id, cursor);
    const rows = await db
      .select()
      .from(jobEvents)
      .where(and(eq(jobEvents.jobId, job.id), gt(jobEvents.id, cursor)))
      .orderBy(asc(jobEvents.id))
      .limit(q.limit + 1);
    return c.json(page(rows.map(toEventObject), q.limit), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{job_id}/checkpoints',
    tags,
    summary: 'List job checkpoints (newest first)',
    security: bearerSecurity,
    request: { params: JobIdParam, query: ListQuery },
    responses: {
      200: { description: 'A page of checkpoints', content: { 'application/json': { schema: CheckpointList } } },
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const { db } = c.get('deps').database;
    const job = await getTenantJob(db, c.get('tenantId'), c.req.valid('param').job_id);
    const { after, limit } = c.req.valid('query');
    const rows = await db
      .select()
      .from(checkpoints)
      .where(and(eq(checkpoints.jobId, job.id), after ? lt(checkpoints.id, after) : undefined))
      .orderBy(desc(checkpoints.id))
      .limit(limit + 1);
    return c.json(page(rows.map((r) => toCheckpointObject(job, r)), limit), 200);
  },
);
