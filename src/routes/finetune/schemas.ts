/**
 * Zod schemas of the fine-tuning job resource's requests and lists (the job, event and checkpoint objects are in
 * src/jobs/objects.ts).
 */
import { z } from '@hono/zod-openapi';
import { METHOD_TYPES } from '../../db/schema';
import { DEVICES } from '../../contract/resources';
import { CheckpointObject, EventObject, JobObject } from '../../jobs/objects';
import { ListQuery, listOf } from '../common';
import { Grader, Hyperparameters, Method } from './hyperparameters';

export const MAX_SEED = Number.MAX_SAFE_INTEGER;
/** The most devices one job may ask for (contract/resources.json). */
export const MAX_DEVICES = DEVICES.maximum;

export const Resources = z
  .object({
    devices: z
      .number()
      .int()
      .min(DEVICES.minimum)
      .max(DEVICES.maximum)
      .default(DEVICES.default)
      .openapi({
        description:
          `${DEVICES.description} More than 1: the rollouts of every mini-batch (mini_batch_size x group_size, and ` +
          '(batch_size mod mini_batch_size) x group_size for the last one of a step when batch_size is not a multiple ' +
          'of mini_batch_size) must divide among them, and lora_rank must be 0 (contract/resources.json).',
      }),
  })
  .strict()
  .openapi('FineTuningJobResources');

const NestedMethod = z.object({ hyperparameters: Hyperparameters.optional() }).strict();

/**
 * `method` in either shape: ours, `{type, hyperparameters}`, or OpenAI's nested one, `{type, <type>: {hyperparameters}}`
 * (what `client.fine_tuning.jobs.create(method={"type": "grpo", "grpo": {"hyperparameters": {...}}})` sends).
 * A bad value is named where it was sent (`method.grpo.hyperparameters.batch_size`); then the ours-shaped value is
 * checked as a whole by `Method` (rules across fields).
 */
export const MethodInput = z
  .object({
    type: z.enum(METHOD_TYPES).default('soft_grpo'),
    hyperparameters: Hyperparameters.optional(),
    soft_grpo: NestedMethod.optional().openapi({ description: 'OpenAI\'s nested shape, for type soft_grpo.' }),
    grpo: NestedMethod.optional().openapi({ description: 'OpenAI\'s nested shape, for type grpo.' }),
  })
  .strict()
  .superRefine((m, ctx) => {
    for (const other of METHOD_TYPES)
      if (other !== m.type && m[other] !== undefined)
        ctx.addIssue({ code: 'custom', path: [other], message: `does not match method.type "${m.type}"` });
    if (m.hyperparameters !== undefined && m[m.type]?.hyperparameters !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: [m.type, 'hyperparameters'],
        message: `give the hyperparameters once: in method.hyperparameters or in method.${m.type}.hyperparameters`,
      });
  })
  .transform((m) => ({ type: m.type, hyperparameters: m.hyperparameters ?? m[m.type]?.hyperparameters }))
  // Method's input type has optional fields; the transform's output always has them (the cast bridges the two).
  .pipe(Method as unknown as z.ZodType<z.output<typeof Method>, any>)
  .openapi('FineTuneMethodInput');

export const CreateJobBody = z
  .object({
    model: z.string().min(1).max(128).openapi({ description: 'Base model id (see GET /v1/models).', example: 'tiny-arith' }),
    training_file: z.string().min(1).max(128).openapi({ description: 'A file id with purpose fine-tune.' }),
    validation_file: z.string().min(1).max(128).nullable().optional(),
    method: MethodInput.default(Method.parse({})),
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
    resources: Resources.default({ devices: DEVICES.default }).openapi({
      description: 'What the job runs on. The same seed samples the same rollouts on any number of devices.',
    }),
    metadata: z
      .record(z.string().max(64), z.string().max(512))
      .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys')
      .nullable()
      .optional(),
    integrations: z
      .array(z.unknown())
      .max(0, 'no integrations (such as wandb) are supported; send [] or leave it out')
      .nullable()
      .optional()
      .openapi({ description: "OpenAI's field, accepted when empty: no integrations are supported." }),
  })
  .strict()
  .openapi('CreateFineTuningJob');

export const ListJobsQuery = ListQuery.extend({
  metadata: z
    .union([z.literal('null'), z.record(z.string(), z.string())])
    .optional()
    .openapi({
      param: { style: 'deepObject', explode: true },
      description:
        'Only jobs whose metadata has every given pair: `metadata[key]=value` (repeat for more keys; an empty value ' +
        'matches an empty string). `metadata=null`: only jobs without metadata.',
    }),
});

export const JobList = listOf(JobObject, 'FineTuningJobList');

export const EventList = listOf(EventObject, 'FineTuningJobEventList');

/** One server-sent event of `events?stream=true` (keep-alive comments carry no event). */
export const EventStreamItem = z
  .object({
    event: z.enum(['event', 'done']),
    data: z.string().openapi({ description: 'JSON: a FineTuningJobEvent (event), or {"status": <final status>} (done).' }),
    id: z.string().optional().openapi({ description: 'The event id (ftevent-<n>): the Last-Event-ID to resume from.' }),
  })
  .openapi('FineTuningJobEventStreamItem');

export const CheckpointList = listOf(CheckpointObject, 'FineTuningJobCheckpointList');

export const EventsQuery = z.object({
  after: z
    .string()
    .max(64)
    .optional()
    .openapi({ description: 'Cursor: an event id (ftevent-<n>) of this job; the events after it in the chosen order.' }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  order: z.enum(['asc', 'desc']).optional().openapi({
    description: 'desc (the default, as OpenAI): newest first; asc: oldest first. A stream is always oldest first.',
  }),
  stream: z
    .enum(['true', 'false'])
    .default('false')
    .openapi({ description: 'true: a text/event-stream of events (resume with `after` or Last-Event-ID).' }),
});
