/**
 * Fine-tuning jobs, mounted at `/v1/finetune` and at OpenAI's `/v1/fine_tuning/jobs`: create, list, retrieve,
 * cancel, pause, resume, events (page or server-sent events) and checkpoints. Tenant-scoped: another tenant's
 * job id answers 404. Status changes go through src/jobs/lifecycle.ts (illegal ones answer 409).
 */
import { checkBaseModelMemory } from '../../models/memory-estimate';
import { findBaseModel } from '../../models/tenant-models';
import { createRoute } from '@hono/zod-openapi';
import { and, asc, desc, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { checkpoints, files, jobEvents, jobs } from '../../db/schema';
import { badRequest, errorResponses, notFound } from '../../errors';
import { cancelJob, createJob, pauseJob, resumeJob } from '../../jobs/lifecycle';
import { CheckpointObject, JobObject, parseEventCursor, toCheckpointObject, toEventObject, toJobObject } from '../../jobs/objects';
import { getTenantJob } from '../../jobs/store';
import { createRouter } from '../../router';
import { checkJobQuota, jobQuotaGuard, jobWasKept } from '../../tenants/job-quota';
import { IdempotencyHeaders, JobIdParam, ListQuery, bearerSecurity, page, requireCursor, unknownCursor } from '../common';
import { CheckpointList, CreateJobBody, EventList, EventStreamItem, EventsQuery, JobList, ListJobsQuery } from './schemas';
import { checkJobResources, resolveJobHyperparameters, type JobFiles } from './resolve-job';
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
      'accepts "auto", resolved here: the job stores and returns the values it trains with. A value that breaks a ' +
      'rule of the trainer answers 400 naming the field; prompts that do not fit the model\'s context with ' +
      'max_response_tokens answer 400 `prompt_too_long` naming the lines (see Hyperparameters). ' +
      '`method` is ours, `{type, hyperparameters}`, or OpenAI\'s nested `{type, <type>: {hyperparameters}}`. ' +
      'Idempotency-Key is honoured. An organization holds a limited number of unfinished jobs ' +
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
    const base = await findBaseModel(deps, tenantId, body.model);
    if (!base) throw notFound('model', body.model, 'model');
    const found: Partial<JobFiles> = {};
    for (const param of ['training_file', 'validation_file'] as const) {
      const id = body[param];
      if (!id) continue;
      const file = await db
        .select()
        .from(files)
        .where(and(eq(files.id, id), eq(files.tenantId, tenantId)))
        .get();
      if (!file) throw notFound('file', id, param);
      found[param] = file;
    }
    const hyperparameters = await resolveJobHyperparameters(deps, base, body.method.type, body.method.hyperparameters, {
      training_file: found.training_file!,
      validation_file: found.validation_file ?? null,
    });
    checkJobResources(body.resources.devices, hyperparameters);
    await checkBaseModelMemory(deps, base, hyperparameters, body.resources.devices);
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
      hyperparameters,
      grader: body.grader as Record<string, unknown>,
      suffix: body.suffix ?? null,
      seed: body.seed ?? randomSeed(),
      devices: body.resources.devices,
      metadata: body.metadata ?? null,
      maxAttempts: deps.config.maxAttempts,
      createdAt: now,
      updatedAt: now,
    };
    await createJob(deps, row, [...jobQuotaGuard(db, tenantId, id, deps.config.tenantLimits.activeJobs)]);
    await jobWasKept(c, deps, tenantId, id);
    return c.json(toJobObject(await getTenantJob(db, tenantId, id), deps.clock.now()), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags,
    summary: 'List fine-tuning jobs (newest first)',
    description: 'Filter by metadata with `metadata[key]=value` (every pair must match), as OpenAI\'s list does.',
    security: bearerSecurity,
    request: { query: ListJobsQuery },
    responses: {
      200: { description: 'A page of jobs', content: { 'application/json': { schema: JobList } } },
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const { after, limit, metadata } = c.req.valid('query');
    const deps = c.get('deps');
    const { db } = deps.database;
    const tenant = eq(jobs.tenantId, c.get('tenantId'));
    await requireCursor(db, jobs, jobs.id, tenant, after);
    // `metadata[key]=value` arrives as query keys of that name (deepObject); `metadata=null` as the literal.
    const pairs = Object.entries(c.req.queries())
      .map(([k, v]) => [/^metadata\[(.*)\]$/s.exec(k)?.[1], v] as const)
      .filter((p): p is readonly [string, string[]] => p[0] !== undefined);
    if (pairs.length > 0 && metadata === 'null')
      throw badRequest('metadata: use either metadata=null or metadata[key]=value, not both', 'metadata');
    const matches = pairs.flatMap(([key, values]) =>
      values.map(
        (v) => sql`exists (select 1 from json_each(${jobs.metadata}) where json_each.key = ${key} and json_each.value = ${v})`,
      ),
    );
    const rows = await db
      .select()
      .from(jobs)
      .where(and(tenant, after ? lt(jobs.id, after) : undefined, metadata === 'null' ? isNull(jobs.metadata) : undefined, ...matches))
      .orderBy(desc(jobs.id))
      .limit(limit + 1);
    const now = deps.clock.now();
    return c.json(page(rows.map((r) => toJobObject(r, now)), limit), 200);
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
    const deps = c.get('deps');
    const job = await getTenantJob(deps.database.db, c.get('tenantId'), c.req.valid('param').job_id);
    return c.json(toJobObject(job, deps.clock.now()), 200);
  },
);

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
    const job = await cancelJob(deps, c.get('tenantId'), c.req.valid('param').job_id);
    return c.json(toJobObject(job, deps.clock.now()), 200);
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
    const job = await pauseJob(deps, c.get('tenantId'), c.req.valid('param').job_id);
    return c.json(toJobObject(job, deps.clock.now()), 200);
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
    const job = await resumeJob(deps, c.get('tenantId'), c.req.valid('param').job_id);
    return c.json(toJobObject(job, deps.clock.now()), 200);
  },
);

finetuneRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{job_id}/events',
    tags,
    summary: 'List job events (newest first, or oldest first with order=asc), or stream them',
    description:
      'A page of events, newest first as OpenAI lists them (`order=asc`: oldest first), `after` an event id of this job ' +
      '(400 `invalid_cursor` otherwise). With `stream=true` the answer is a text/event-stream, oldest first: ' +
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
    const streaming = q.stream === 'true';
    if (streaming && q.order === 'desc') throw badRequest('order: a stream is always oldest first; leave order out or send asc', 'order');
    const cursorText = q.after ?? (streaming ? c.req.header('last-event-id') : undefined);
    const cursor = cursorText === undefined ? null : parseEventCursor(cursorText);
    if (cursorText !== undefined) {
      const known =
        cursor !== null &&
        (await db
          .select({ id: jobEvents.id })
          .from(jobEvents)
          .where(and(eq(jobEvents.id, cursor), eq(jobEvents.jobId, job.id)))
          .get());
      if (!known) throw unknownCursor(cursorText);
    }
    if (streaming) return streamJobEvents(c, job.id, cursor ?? 0);
    const newestFirst = q.order !== 'asc';
    const rows = await db
      .select()
      .from(jobEvents)
      .where(
        and(
          eq(jobEvents.jobId, job.id),
          cursor === null ? undefined : newestFirst ? lt(jobEvents.id, cursor) : gt(jobEvents.id, cursor),
        ),
      )
      .orderBy(newestFirst ? desc(jobEvents.id) : asc(jobEvents.id))
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
    await requireCursor(db, checkpoints, checkpoints.id, eq(checkpoints.jobId, job.id), after);
    const rows = await db
      .select()
      .from(checkpoints)
      .where(and(eq(checkpoints.jobId, job.id), after ? lt(checkpoints.id, after) : undefined))
      .orderBy(desc(checkpoints.id))
      .limit(limit + 1);
    return c.json(page(rows.map((r) => toCheckpointObject(job, r)), limit), 200);
  },
);
