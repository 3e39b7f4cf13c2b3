/**
 * The public objects of a fine-tuning job, in OpenAI's shapes (`fine_tuning.job`, `fine_tuning.job.event`,
 * `fine_tuning.job.checkpoint`, compared with the official `openai` Python client's models in
 * sdk/python/tests/test_openai_client.py): their zod schemas and the functions that build them from rows. The user
 * routes (/v1/finetune) and the worker routes (/internal) both answer with them.
 */
import { z } from '@hono/zod-openapi';
import { EVENT_LEVELS, JOB_STATUSES, METHOD_TYPES, type CheckpointRow, type EventRow, type JobRow } from '../db/schema';
import { checkpointModelName } from '../models/names';

const seconds = (ms: number) => Math.floor(ms / 1000);
const secondsOrNull = (ms: number | null | undefined) => (ms == null ? null : seconds(ms));

// Not a named component: used nullable (a named one would make the component itself nullable).
export const JobError = z.object({ code: z.string(), message: z.string(), param: z.string().nullable() });

const Hyperparameters = z
  .record(z.string(), z.unknown())
  .openapi({ description: 'The hyperparameters the job trains with (as stored at create).' });

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
    method: z.object({ type: z.enum(METHOD_TYPES), hyperparameters: Hyperparameters }),
    hyperparameters: Hyperparameters.openapi({
      description: "The same as method.hyperparameters, at the top level as OpenAI's job object has them.",
    }),
    grader: z.record(z.string(), z.unknown()),
    suffix: z.string().nullable(),
    seed: z.number().int(),
    resources: z
      .object({ devices: z.number().int() })
      .openapi({ description: 'What the job runs on: devices, one torch.distributed rank each.' }),
    metadata: z.record(z.string(), z.string()).nullable(),
    error: JobError.nullable(),
    trained_steps: z.number().int(),
    attempts: z.number().int(),
    result_files: z.array(z.string()).openapi({
      description:
        'File ids: once the job succeeded, one CSV (purpose fine-tune-results) of its step metrics, one row per step; ' +
        'download it with GET /v1/files/{file_id}/content.',
    }),
    trained_tokens: z.number().int().nullable().openapi({
      description:
        "Once the job succeeded: the tokens it trained on, summed over its steps (each step's rollouts, prompt and " +
        'sampled tokens, as its worker reported them). null before, or when the worker reported none.',
    }),
    estimated_finish: z.number().int().nullable().openapi({
      description:
        'While running: a rough Unix time of the end, from the steps still to do and the average time per step since ' +
        'the job started. null otherwise, or when n_steps is not known yet.',
    }),
    integrations: z
      .array(z.record(z.string(), z.unknown()))
      .openapi({ description: 'Always empty: no integrations (such as Weights & Biases) are supported.' }),
    user_provided_suffix: z.string().nullable(),
  })
  .openapi('FineTuningJob');
export type JobObject = z.infer<typeof JobObject>;

export const EventObject = z
  .object({
    id: z.string().openapi({ example: 'ftevent-42' }),
    object: z.literal('fine_tuning.job.event'),
    created_at: z.number().int(),
    level: z.enum(EVENT_LEVELS),
    type: z.string().openapi({ description: '"message", "status", "metrics", "hyperparameters", "checkpoint", "eval", ...' }),
    message: z.string(),
    data: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('FineTuningJobEvent');

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

/**
 * While a job runs and its step count is known: now + steps left x mean time per step since it started (pauses and
 * lost attempts included, so it errs late). null otherwise, as OpenAI's field is for jobs that are not running.
 */
export function estimatedFinish(j: JobRow, now: number): number | null {
  const total = j.hyperparameters.n_steps;
  if (j.status !== 'running' || typeof total !== 'number' || j.startedAt == null || j.trainedSteps <= 0) return null;
  const perStep = Math.max(0, now - j.startedAt) / j.trainedSteps;
  return seconds(now + Math.max(0, total - j.trainedSteps) * perStep);
}

export function toJobObject(j: JobRow, now: number): JobObject {
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
    hyperparameters: j.hyperparameters,
    grader: j.grader,
    suffix: j.suffix,
    seed: j.seed,
    resources: { devices: j.devices ?? 1 },
    metadata: j.metadata,
    error: j.error,
    trained_steps: j.trainedSteps,
    attempts: j.attempts,
    result_files: j.resultFiles ?? [],
    trained_tokens: j.trainedTokens ?? null,
    estimated_finish: estimatedFinish(j, now),
    integrations: [],
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
