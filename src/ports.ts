/**
 * The small interfaces the app depends on. Entry points (src/entry/node.ts, src/entry/worker.ts) build one `Deps`
 * from adapters and pass it to `createApp(deps)`; handlers never ask which runtime they run on.
 */
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import type { BatchItem, BatchResponse } from 'drizzle-orm/batch';
import type { Schema } from './db/schema';

/**
 * A drizzle SQLite database that works on better-sqlite3 and on D1. Rules for callers:
 * - always `await` a query (the better-sqlite3 driver returns plain values, which `await` passes through);
 * - never use `db.transaction` (D1 has none): a state change that must be atomic is ONE conditional
 *   `UPDATE ... WHERE <expected state> RETURNING`, or a group of writes passed to `batch`;
 * - do not read the result of `.run()` (its shape differs per driver); use `.returning()` to learn what changed.
 */
export type Db = BaseSQLiteDatabase<'async', unknown, Schema>;

export interface Database {
  db: Db;
  /**
   * Runs the statements atomically and in order (all or none): a SQLite transaction on Node, `db.batch` on D1.
   * Answers one result per statement: the rows of a statement with `.returning()` (or of a select); anything
   * else is the driver's run result, which callers must not read (its shape differs per driver).
   */
  batch<T extends [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]]>(statements: T): Promise<BatchResponse<T>>;
}

export interface BlobInfo {
  size: number;
  /** Lower-case hex SHA-256 of the content. */
  sha256: string;
}

/**
 * Content-addressed by caller-chosen keys (`files/<tenant>/<file_id>`, `checkpoints/<job_id>/step-<n>/<name>`,
 * `models/<base_id>/<name>`). Writes are all-or-nothing: a `put` whose stream errors leaves nothing behind.
 */
export interface BlobStore {
  /**
   * Streams `body` to `key`. Rejects (and stores nothing) when the stream errors or exceeds `maxBytes`
   * (the error then is a `BlobTooLargeError`). Overwrites an existing blob atomically, unless `ifAbsent` is set:
   * then a key that already holds a blob is never replaced and the put rejects with `BlobExistsError` (the
   * write-once rule of blobs written through signed URLs). With `sha256` (lower-case hex), content that hashes to
   * anything else is refused with `BlobDigestMismatchError` and nothing is stored; the store keeps that hash, so
   * `head` answers it without reading the content again.
   */
  put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts?: { maxBytes?: number; contentType?: string; ifAbsent?: boolean; sha256?: string },
  ): Promise<BlobInfo>;
  /** A fresh stream of the content, or null when absent. */
  get(key: string): Promise<{ body: ReadableStream<Uint8Array>; size: number } | null>;
  /** Size and SHA-256, or null when absent. */
  head(key: string): Promise<BlobInfo | null>;
  /** Removes the blob; absent keys are not an error. */
  delete(key: string): Promise<void>;
}

/**
 * Makes time-limited URLs through which a client downloads (GET) or uploads (PUT) one blob without a bearer
 * token: HMAC-signed `/blobs/...` routes of this app on Node (src/adapters/signed-urls.ts), R2 presigned URLs
 * on Workers. `origin` is the public origin of the current request (e.g. `http://127.0.0.1:8787`).
 * A PUT signed with `sha256` (lower-case hex) only stores content with that hash, and the uploader must send
 * `checksumHeaders(sha256)` (src/adapters/signed-urls.ts) with it: the store itself verifies the content.
 */
export interface BlobUrlSigner {
  sign(args: { key: string; method: 'GET' | 'PUT'; expiresAt: number; origin: string; sha256?: string }): Promise<string>;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface Ids {
  /** A new unique id `<prefix>-<26 lower-case base32 chars>`, sortable by creation time. */
  next(prefix: string): string;
  /** A new random secret (API keys, lease tokens): URL-safe, at least 128 bits. */
  secret(bytes?: number): string;
}

export interface BaseModel {
  /** Model id users pass as `model`, e.g. "tiny-arith"; never contains ':'. */
  id: string;
  ownedBy: string;
  /** Seconds since the epoch. */
  created: number;
  /** The folder's manifest.json (format softgrpo-model/1), including `recommended_hyperparameters` if any. */
  manifest: Record<string, unknown>;
  /** Files of the model folder as stored in the blob store under `blobPrefix` + name. */
  files: { name: string; bytes: number; sha256: string }[];
  blobPrefix: string;
}

export interface Limits {
  /** JSON request bodies (every route but uploads). */
  maxJsonBodyBytes: number;
  /** One uploaded JSONL file. */
  maxFileBytes: number;
  /** One JSONL line. */
  maxLineBytes: number;
  /** One blob uploaded through a signed URL (checkpoint files). */
  maxBlobBytes: number;
  /** Largest `limit` of list endpoints. */
  maxListLimit: number;
  /** Events one append call may carry. */
  maxEventsPerAppend: number;
}

/**
 * Per-tenant limits (src/tenants/): over one, a /v1 request answers 429 `rate_limit_exceeded` with retry-after and
 * x-ratelimit-* headers. Counted in the database, so they hold across Workers isolates and Node processes alike.
 */
export interface TenantLimits {
  /** /v1 requests per tenant per fixed one-minute window (every /v1 route; not /internal, /blobs, /healthz). */
  requestsPerMinute: number;
  /** Reasoning samples in flight per tenant: a /v1/reason or chat request holds its n until it (or its stream) ends. */
  concurrentSamples: number;
  /** Unfinished fine-tuning jobs per tenant (validating_files, queued, running, pausing, paused), checked at create. */
  activeJobs: number;
}

export interface Config {
  /** Bearer token of GPU workers for /internal routes. */
  workerToken: string;
  /** HMAC secret of signed blob URLs (local routes). */
  signingSecret: string;
  baseModels: BaseModel[];
  limits: Limits;
  tenantLimits: TenantLimits;
  /** How long a claim or heartbeat keeps a job leased. */
  leaseSeconds: number;
  /** Claims a job may get; when the lease of the last one expires the job fails. */
  maxAttempts: number;
  /** Lifetime of signed URLs. */
  signedUrlSeconds: number;
  /** Server-sent events: poll interval of the event table, keep-alive comment interval, longest stream. */
  sse: { pollMs: number; keepAliveMs: number; maxStreamMs: number };
  /** Memory of one device of the deployment's workers: a job whose estimate exceeds it is refused at creation
   * (src/models/memory-estimate.ts; default 80 GiB). */
  workerDeviceMemoryBytes?: number;
  /** Limits of tenant-owned base models (src/models/tenant-models.ts; default DEFAULT_TENANT_MODEL_LIMITS). */
  tenantModelLimits?: import('./models/tenant-models').TenantModelLimits;
}

/** The inference engines /v1/reason and /v1/chat/completions use (model -> engine), see src/engine/types.ts. */
export type EngineRegistry = import('./engine/types').EngineRegistry;

export interface Deps {
  database: Database;
  blobs: BlobStore;
  blobUrls: BlobUrlSigner;
  clock: Clock;
  ids: Ids;
  config: Config;
  /** Inference engines; absent where the deployment serves no inference. */
  engines?: EngineRegistry;
  /** Base models the deployment lists but could not load (e.g. not uploaded yet); /healthz names them. */
  missingBaseModels?: string[];
  /** Serves the API reference page's JavaScript bundle (`/docs/scalar.js`); absent: the page says so. */
  docsAssets?: { scalarBundle(): Promise<ReadableStream<Uint8Array> | string> };
}

export const DEFAULT_LIMITS: Limits = {
  maxJsonBodyBytes: 1024 * 1024,
  maxFileBytes: 512 * 1024 * 1024,
  maxLineBytes: 1024 * 1024,
  maxBlobBytes: 8 * 1024 * 1024 * 1024,
  maxListLimit: 100,
  maxEventsPerAppend: 500,
};

export const DEFAULT_TENANT_LIMITS: TenantLimits = {
  requestsPerMinute: 600,
  concurrentSamples: 64,
  activeJobs: 16,
};

/** Config defaults for everything but the secrets and the model list. */
export function defaultConfig(over: Pick<Config, 'workerToken' | 'signingSecret'> & Partial<Config>): Config {
  return {
    baseModels: [],
    limits: DEFAULT_LIMITS,
    tenantLimits: DEFAULT_TENANT_LIMITS,
    leaseSeconds: 120,
    maxAttempts: 3,
    signedUrlSeconds: 3600,
    sse: { pollMs: 500, keepAliveMs: 15_000, maxStreamMs: 10 * 60_000 },
    ...over,
  };
}
