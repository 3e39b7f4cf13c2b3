/**
 * Database tables (drizzle-orm, SQLite dialect): the single source of truth for stored state.
 * The same schema runs on better-sqlite3 (Node) and D1 (Workers); migrations/ is generated from it with
 * `npx drizzle-kit generate`. Times are integer milliseconds since the epoch; JSON columns are TEXT in JSON mode.
 * Enumerations are exported as const arrays so the API's zod schemas derive from the same values.
 */

import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

export const JOB_STATUSES = [
  'validating_files',
  'queued',
  'running',
  'pausing',
  'paused',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export const METHOD_TYPES = ['soft_grpo', 'grpo'] as const;
export const EVENT_LEVELS = ['info', 'warn', 'error'] as const;
/** `fine-tune`: an uploaded dataset; `fine-tune-results`: a succeeded job's step metrics (CSV), written by the API. */
export const FILE_PURPOSES = ['fine-tune', 'fine-tune-results'] as const;

export const tenants = sqliteTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: integer('created_at').notNull(),
  /**
   * Round-robin position of fair claiming (src/jobs/claim.ts): a claim takes a job of the tenant whose last claim is
   * the oldest (null: never claimed), then stamps it with one more than the largest stamp so far.
   */
  lastClaimSeq: integer('last_claim_seq'),
});

export const apiKeys = sqliteTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** Hex SHA-256 of the whole key; the key itself is never stored. */
    keyHash: text('key_hash').notNull(),
    /** The first characters of the key, to tell keys apart in listings. */
    prefix: text('prefix').notNull(),
    name: text('name').notNull(),
    createdAt: integer('created_at').notNull(),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('api_keys_key_hash_unique').on(t.keyHash)],
);

export const files = sqliteTable(
  'files',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    filename: text('filename').notNull(),
    purpose: text('purpose', { enum: FILE_PURPOSES }).notNull(),
    bytes: integer('bytes').notNull(),
    /** Number of examples (non-blank JSONL lines). */
    examples: integer('examples').notNull(),
    sha256: text('sha256').notNull(),
    blobKey: text('blob_key').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('files_tenant_id_idx').on(t.tenantId, t.id)],
);

export const jobs = sqliteTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** Base model id. */
    model: text('model').notNull(),
    /** File ids, deliberately without foreign keys: a job keeps naming a file that was deleted later. */
    trainingFile: text('training_file').notNull(),
    validationFile: text('validation_file'),
    methodType: text('method_type', { enum: METHOD_TYPES }).notNull(),
    /** As requested: every hyperparameter, "auto" where not given. The worker resolves "auto". */
    hyperparameters: text('hyperparameters', { mode: 'json' }).notNull().$type<Record<string, unknown>>(),
    grader: text('grader', { mode: 'json' }).notNull().$type<Record<string, unknown>>(),
    suffix: text('suffix'),
    seed: integer('seed').notNull(),
    /** resources.devices: the devices (GPUs) the job trains on; a worker claims it only if it has that many. */
    devices: integer('devices').notNull().default(1),
    metadata: text('metadata', { mode: 'json' }).$type<Record<string, string>>(),
    status: text('status', { enum: JOB_STATUSES }).notNull(),
    fineTunedModel: text('fine_tuned_model'),
    error: text('error', { mode: 'json' }).$type<{ code: string; message: string; param: string | null }>(),
    trainedSteps: integer('trained_steps').notNull().default(0),
    /** Set when the job succeeds: the sum of the `step_tokens` its worker reported per step (null: none reported). */
    trainedTokens: integer('trained_tokens'),
    /** File ids of the job's result files (the step-metrics CSV), written when the job succeeds. */
    resultFiles: text('result_files', { mode: 'json' }).notNull().default([]).$type<string[]>(),
    /** Number of claims so far (the current attempt while running). */
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull(),
    leaseToken: text('lease_token'),
    leaseExpiresAt: integer('lease_expires_at'),
    workerId: text('worker_id'),
    createdAt: integer('created_at').notNull(),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    index('jobs_tenant_id_idx').on(t.tenantId, t.id),
    // The job quota counts a tenant's unfinished jobs at every create.
    index('jobs_tenant_status_idx').on(t.tenantId, t.status),
    index('jobs_status_created_idx').on(t.status, t.createdAt),
    index('jobs_lease_idx').on(t.status, t.leaseExpiresAt),
  ],
);

export const jobEvents = sqliteTable(
  'job_events',
  {
    /** Global order; exposed as `ftevent-<id>` and used as the `after` / Last-Event-ID cursor. */
    id: integer('id').primaryKey({ autoIncrement: true }),
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    /** The worker's per-job sequence number (null for events the API writes itself); duplicates are ignored. */
    seq: integer('seq'),
    level: text('level', { enum: EVENT_LEVELS }).notNull(),
    type: text('type').notNull(),
    message: text('message').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('job_events_job_seq_unique').on(t.jobId, t.seq), index('job_events_job_id_idx').on(t.jobId, t.id)],
);

export type CheckpointFile = { name: string; bytes: number; sha256: string };

export const checkpoints = sqliteTable(
  'checkpoints',
  {
    id: text('id').primaryKey(),
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    tenantId: text('tenant_id').notNull(),
    step: integer('step').notNull(),
    metrics: text('metrics', { mode: 'json' }).notNull().$type<Record<string, number>>(),
    files: text('files', { mode: 'json' }).notNull().$type<CheckpointFile[]>(),
    blobPrefix: text('blob_prefix').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('checkpoints_job_step_unique').on(t.jobId, t.step), index('checkpoints_tenant_idx').on(t.tenantId)],
);

export const idempotencyKeys = sqliteTable(
  'idempotency_keys',
  {
    /** Tenant id, or `worker` for /internal calls. */
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    /** SHA-256 of method, path and body: a reused key with another request answers 409. */
    fingerprint: text('fingerprint').notNull(),
    /** null while the first request is still running. */
    statusCode: integer('status_code'),
    contentType: text('content_type'),
    body: text('body'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] }), index('idempotency_created_idx').on(t.createdAt)],
);

/**
 * Requests per minute (src/tenants/request-rate.ts): one fixed-window counter per tenant and minute, incremented by
 * an atomic upsert; a tenant's older windows are deleted when its next window opens.
 */
export const requestWindows = sqliteTable(
  'request_windows',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** Start of the window, ms since the epoch (a multiple of the window length). */
    windowStart: integer('window_start').notNull(),
    requests: integer('requests').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.windowStart] })],
);

/**
 * Concurrent reasoning samples (src/tenants/sample-budget.ts): one row per running /v1/reason or chat request,
 * holding its n samples until the request (or its stream) ends. A row whose expiry passed no longer counts, so a
 * crashed process frees its tenant's capacity once the expiry (renewed while the request runs) runs out.
 */
export const sampleReservations = sqliteTable(
  'sample_reservations',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    samples: integer('samples').notNull(),
    expiresAt: integer('expires_at').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('sample_reservations_tenant_idx').on(t.tenantId, t.expiresAt)],
);

/**
 * Serving replicas (src/replicas/): gpu-worker `serve` processes that registered themselves. A replica heartbeats
 * its load and the models it holds; one whose heartbeat is older than its expiry no longer receives requests and is
 * deleted by the next registration or sweep. `token` is the bearer token the API sends to the replica (made here
 * at registration, returned once to the replica); `api_origin` is the origin the replica reached the API at, so the
 * API signs the model-file URLs it hands the replica against an address the replica can reach.
 */
export const serveReplicas = sqliteTable(
  'serve_replicas',
  {
    id: text('id').primaryKey(),
    url: text('url').notNull(),
    token: text('token').notNull(),
    apiOrigin: text('api_origin').notNull(),
    /** Generations in flight on the replica, as its last heartbeat said. */
    load: integer('load').notNull(),
    /** Generations the replica runs at once (it queues the rest). */
    capacity: integer('capacity').notNull(),
    /** JSON array of the model keys the replica holds in memory (src/replicas/model-key.ts). */
    models: text('models', { mode: 'json' }).$type<string[]>().notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('serve_replicas_expires_idx').on(t.expiresAt)],
);

/** Base models a tenant uploaded (src/models/tenant-models.ts): visible to that tenant only; ids are unique across
 * tenants (engines and caches key models by id). */
export const tenantModels = sqliteTable(
  'tenant_models',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** uploading (signed PUT URLs open) -> ready (files verified, servable and fine-tunable). */
    status: text('status', { enum: ['uploading', 'ready'] }).notNull(),
    files: text('files', { mode: 'json' }).notNull().$type<CheckpointFile[]>(),
    bytes: integer('bytes').notNull(),
    blobPrefix: text('blob_prefix').notNull(),
    manifest: text('manifest', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('tenant_models_tenant_idx').on(t.tenantId)],
);

export const schema = {
  tenants,
  apiKeys,
  files,
  jobs,
  jobEvents,
  checkpoints,
  idempotencyKeys,
  requestWindows,
  sampleReservations,
  serveReplicas,
  tenantModels,
};
export type Schema = typeof schema;
export type JobRow = typeof jobs.$inferSelect;
export type FileRow = typeof files.$inferSelect;
export type CheckpointRow = typeof checkpoints.$inferSelect;
export type EventRow = typeof jobEvents.$inferSelect;
export type ServeReplicaRow = typeof serveReplicas.$inferSelect;
export type TenantModelRow = typeof tenantModels.$inferSelect;
