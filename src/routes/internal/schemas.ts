/** Request and response schemas of the worker protocol (/internal); documented in docs/CONTRACTS.md "Worker protocol". */
import { z } from '@hono/zod-openapi';
import { EVENT_LEVELS, JOB_STATUSES } from '../../db/schema';
import { DEFAULT_LIMITS } from '../../ports';

export const LeaseToken = z.string().min(1).max(256).openapi({ description: 'The token the claim returned.' });

export const SignedFile = z
  .object({
    name: z.string(),
    bytes: z.number().int(),
    sha256: z.string(),
    url: z.string().openapi({ description: 'Signed GET URL, no bearer token needed.' }),
  }); // not a named component: it is also used nullable, which a $ref cannot express cleanly

export const ClaimBody = z
  .object({
    worker_id: z.string().min(1).max(128).openapi({ description: 'Free-form worker name, recorded on the job.' }),
    models: z.array(z.string().max(128)).max(32).optional().openapi({ description: 'Only claim jobs on these base models.' }),
    devices: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(1)
      .openapi({ description: 'Devices this worker has: only jobs whose resources.devices is at most this are claimed.' }),
  })
  .strict();

export const ClaimResponse = z
  .object({
    job: z.object({
      id: z.string(),
      model: z.string(),
      method: z.object({ type: z.enum(['soft_grpo', 'grpo']), hyperparameters: z.record(z.string(), z.unknown()) }),
      grader: z.record(z.string(), z.unknown()),
      seed: z.number().int(),
      resources: z.object({ devices: z.number().int() }).openapi({
        description: 'Devices the job trains on: more than 1 runs under torchrun, one rank per device.',
      }),
      suffix: z.string().nullable(),
      training_file: z.string(),
      validation_file: z.string().nullable(),
      fine_tuned_model: z.string().openapi({ description: 'Name the result will carry: ft:<base>:<suffix>:<job_id>.' }),
    }),
    lease: z.object({ token: z.string(), expires_at: z.number().int(), seconds: z.number().int() }),
    attempt: z.number().int().openapi({ description: '1 for the first claim of this job, 2 after one lost lease, ...' }),
    max_attempts: z.number().int(),
    next_event_seq: z.number().int().openapi({ description: 'First unused event sequence number of this job.' }),
    urls_expire_at: z.number().int(),
    training_file: SignedFile,
    validation_file: SignedFile.nullable(),
    base_model: z.object({ id: z.string(), manifest: z.record(z.string(), z.unknown()), files: z.array(SignedFile) }),
    resume_from: z
      .object({ checkpoint_id: z.string(), step: z.number().int(), files: z.array(SignedFile) })
      .nullable()
      .openapi({ description: 'The last registered checkpoint: continue training from it. null: start fresh.' }),
  })
  .openapi('WorkerClaim');

export const HeartbeatBody = z
  .object({
    lease_token: LeaseToken,
    trained_steps: z.number().int().min(0).optional().openapi({ description: 'Progress, shown on the job.' }),
  })
  .strict();

export const HeartbeatResponse = z
  .object({
    action: z.enum(['continue', 'pause', 'cancel']).openapi({
      description:
        'continue: keep going. pause: write a checkpoint, then POST .../pause. cancel: stop now (the lease is released).',
    }),
    status: z.enum(JOB_STATUSES),
    lease_expires_at: z.number().int(),
  })
  .openapi('WorkerHeartbeat');

export const WorkerEvent = z
  .object({
    seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    level: z.enum(EVENT_LEVELS).default('info'),
    type: z.string().min(1).max(64).default('message'),
    message: z.string().max(4000),
    data: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .strict();

export const EventsBody = z
  .object({
    lease_token: LeaseToken,
    events: z.array(WorkerEvent).min(1).max(DEFAULT_LIMITS.maxEventsPerAppend),
  })
  .strict();

export const EventsResponse = z
  .object({ accepted: z.number().int(), duplicates: z.number().int() })
  .openapi('WorkerEventsAppended');

export const FileSpec = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be a plain file name (A-Z a-z 0-9 . _ -, at most 128)'),
    bytes: z.number().int().min(0).max(DEFAULT_LIMITS.maxBlobBytes),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits'),
  })
  .strict();

const uniqueNames = (files: { name: string }[]) => new Set(files.map((f) => f.name)).size === files.length;

export const UploadUrlsBody = z
  .object({
    lease_token: LeaseToken,
    step: z.number().int().min(0),
    files: z.array(FileSpec).min(1).max(64).refine(uniqueNames, 'file names must be unique'),
  })
  .strict();

export const UploadUrlsResponse = z
  .object({
    step: z.number().int(),
    expires_at: z.number().int(),
    files: z.array(
      z.object({
        name: z.string(),
        method: z.literal('PUT'),
        url: z.string(),
        headers: z.record(z.string(), z.string()).openapi({
          description: 'Send these with the PUT: x-amz-checksum-sha256 (base64) and x-amz-meta-sha256 (hex) of the file.',
        }),
      }),
    ),
  })
  .openapi('WorkerCheckpointUploadUrls');

export const RegisterCheckpointBody = z
  .object({
    lease_token: LeaseToken,
    step: z.number().int().min(0),
    files: z.array(FileSpec).min(1).max(64).refine(uniqueNames, 'file names must be unique'),
    metrics: z.record(z.string().max(64), z.number()).default({}),
  })
  .strict();

export const FinishBody = z.object({ lease_token: LeaseToken }).strict();

export const FailBody = z
  .object({
    lease_token: LeaseToken,
    error: z
      .object({
        code: z.string().min(1).max(64),
        message: z.string().min(1).max(2000).openapi({ description: 'Shown to the user: say what to change.' }),
        param: z.string().max(128).nullable().optional(),
      })
      .strict(),
    retryable: z
      .boolean()
      .default(false)
      .openapi({ description: 'true: put the job back in the queue if attempts are left (e.g. out of GPU memory).' }),
  })
  .strict();

export const PauseAckBody = z.object({ lease_token: LeaseToken }).strict();
