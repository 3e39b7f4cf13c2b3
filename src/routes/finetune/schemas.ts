/** Zod schemas of the fine-tuning job resource: request bodies and the job, event and checkpoint objects. */
import { z } from '@hono/zod-openapi';
import { EVENT_LEVELS, JOB_STATUSES, type CheckpointRow, type EventRow, type JobRow } from '../../db/schema';
import { listOf, seconds, secondsOrNull } from '../common';
import { Grader, Method } from './hyperparameters';

export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export const CreateJobBody = z
  .object({
    model: z.string().min(1).max(128).openapi({ description: 'Base model id (see GET /v1/models).', example: 'tiny-arith' }),
    training_file: z.string().min(1).max(128).openapi({ description: 'A file id with purpose fine-tune.' }),
    validation_file: z.string().min(1).max(128).nullable().optional(),
    method: Method.default(Method.parse({})),
    grader: Grader.default({ type: 'math', scope: 'answer' }),
    suffix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,40}$/, 'must be 1-40 characters of A-Z a-z 0-9 _ -')
      .nullable()
      .optional()
      .openapi({ description: 'Part of the fine-tuned model name ft:<base>:<suffix>:<job_id>.' }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(MAX_SEED)
      .optional()
      .openapi({ description: 'Seed of every random draw of the job (Philox key). Default: random.' }),
    metadata: z
      .record(z.string().max(64), z.string().max(512))
      .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys')
      .nullable()
      .optional(),
  })
  .strict()
  .openapi('CreateFineTuningJob');

// Not a named component: used nullable (a named one would make the component itself nullable).
export const JobError = z.object({ code: z.string(), message: z.string(), param: z.string().nullable() });

export const JobObject = z
  .object({
    id: z.string().openapi({ example: 'ftjob-01jd0s2x8v9k7m3n4p5q6r7s8t' }),
    object: z.literal('fine_tuning.job'),
    created_at: z.number().int(),
    started_at: z.number().int().nullable(),
    finished_at: z.number().int().nullable(),
    model: z.string(),
    fine_tuned_model: z.string().nullable(),
    organization_id: z.string(),
    status: z.enum(JOB_STATUSES),
    training_file: z.string(),
    validation_file: z.string().nullable(),
    method: z.object({ type: z.enum(['soft_grpo', 'grpo']), hyperparameters: z.record(z.string(), z.unknown()) }),
    grader: z.record(z.string(), z.unknown()),
    suffix: z.string().nullable(),
    seed: z.number().int(),
    metadata: z.record(z.string(), z.string()).nullable(),
    error: JobError.nullable(),
    trained_steps: z.number().int(),
    attempts: z.number().int(),
    // OpenAI fields kept for SDK compatibility.
    result_files: z.array(z.string()),
    trained_tokens: z.number().int().nullable(),
    estimated_finish: z.number().int().nullable(),
    user_provided_suffix: z.string().nullable(),
  })
  .openapi('FineTuningJob');
export const JobList = listOf(JobObject, 'FineTuningJobList');

export const EventObject = z
  .object({
    id: z.string().openapi({ example: 'ftevent-42' }),
    object: z.literal('fine_tuning.job.event'),
    created_at: z.number().int(),
    level: z.enum(EVENT_LEVELS),
    type: z.string().openapi({ description: '"message", "status", "metrics", "hyperparameters", ...' }),
    message: z.string(),
    data: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('FineTuningJobEvent');
export const EventList = listOf(EventObject, 'FineTuningJobEventList');

/** One server-sent event of `events?stream=true` (keep-alive comments carry no event). */
export const EventStreamItem = z
  .object({
    event: z.enum(['event', 'done']),
    data: z.string().openapi({ description: 'JSON: a FineTuningJobEvent (event), or {"status": <final status>} (done).' }),
    id: z.string().optional().openapi({ description: 'The event id (ftevent-<n>): the Last-Event-ID to resume from.' }),
  })
  .openapi('FineTuningJobEventStreamItem');

export const CheckpointObject = z
  .object({
    id: z.string(),
    object: z.literal('fine_tuning.job.checkpoint'),
    created_at: z.number().int(),
    fine_tuned_model_checkpoint: z.string(),
    fine_tuning_job_id: z.string(),
    step_number: z.number().int(),
    metrics: z.record(z.string(), z.number()),
    files: z.array(z.object({ name: z.string(), bytes: z.number().int(), sha256: z.string() })),
  })
  .openapi('FineTuningJobCheckpoint');
export const CheckpointList = listOf(CheckpointObject, 'FineTuningJobCheckpointList');

export const JobIdParam = z.object({
  job_id: z.string().max(128).openapi({ param: { name: 'job_id', in: 'path' } }),
});

export const EventsQuery = z.object({
  after: z.string().max(64).optional().openapi({ description: 'Cursor: an event id (ftevent-<n>); events after it.' }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  stream: z
    .enum(['true', 'false'])
    .default('false')
    .openapi({ description: 'true: a text/event-stream of events (resume with `after` or Last-Event-ID).' }),
});

/** `ft:<base>:<suffix>:<job_id>`; the suffix part is empty when none was given. */
export const fineTunedModelName = (job: Pick<JobRow, 'model' | 'suffix' | 'id'>) => `ft:${job.model}:${job.suffix ?? ''}:${job.id}`;
export const checkpointModelName = (job: Pick<JobRow, 'model' | 'suffix' | 'id'>, step: number) =>
  `${fineTunedModelName(job)}:ckpt-${step}`;

export function toJobObject(j: JobRow): z.infer<typeof JobObject> {
  return {
    id: j.id,
    object: 'fine_tuning.job',
    created_at: seconds(j.createdAt),
    started_at: secondsOrNull(j.startedAt),
    finished_at: secondsOrNull(j.finishedAt),
    model: j.model,
    fine_tuned_model: j.fineTunedModel,
    organization_id: j.tenantId,
    status: j.status,
    training_file: j.trainingFile,
    validation_file: j.validationFile,
    method: { type: j.methodType, hyperparameters: j.hyperparameters },
    grader: j.grader,
    suffix: j.suffix,
    seed: j.seed,
    metadata: j.metadata,
    error: j.error,
    trained_steps: j.trainedSteps,
    attempts: j.attempts,
    result_files: [],
    trained_tokens: null,
    estimated_finish: null,
    user_provided_suffix: j.suffix,
  };
}

export const eventId = (n: number) => `ftevent-${n}`;
/** The numeric cursor of `ftevent-<n>` (or a bare number, as Last-Event-ID), or null. */
export function parseEventCursor(s: string | undefined | null): number | null {
  const m = s?.match(/^(?:ftevent-)?(\d{1,15})$/);
  return m ? Number(m[1]) : null;
}

export function toEventObject(e: EventRow): z.infer<typeof EventObject> {
  return {
    id: eventId(e.id),
    object: 'fine_tuning.job.event',
    created_at: seconds(e.createdAt),
    level: e.level,
    type: e.type,
    message: e.message,
    data: e.data ?? null,
  };
}

export function toCheckpointObject(job: JobRow, c: CheckpointRow): z.infer<typeof CheckpointObject> {
  return {
    id: c.id,
    object: 'fine_tuning.job.checkpoint',
    created_at: seconds(c.createdAt),
    fine_tuned_model_checkpoint: checkpointModelName(job, c.step),
    fine_tuning_job_id: job.id,
    step_number: c.step,
    metrics: c.metrics,
    files: c.files,
  };
}
