/**
 * Cloudflare Workers entry point (wrangler.toml `main`): the app of src/app.ts on D1 (database) and R2 (blobs);
 * the cron trigger runs the lease sweep. Only adapters differ from src/entry/node.ts.
 *
 * Blob URLs are chosen by configuration, not detected: BLOB_URL_MODE = "r2-presigned" signs S3 URLs straight to R2
 * (needs the R2_* secrets), "worker-hmac" signs URLs to this Worker's own /blobs routes (needs SIGNING_SECRET).
 * A mode whose secrets are missing fails every request with a clear configuration error instead of degrading.
 *
 * Inference on Workers goes to gpu-worker `serve` processes: serving replicas that registered themselves
 * (src/replicas/; any model, fine-tuned checkpoints included), else the fixed REMOTE_ENGINES per model; with
 * neither, /v1/reason answers 503 (no engines). The onnxruntime-node engine is Node-only.
 *
 * Base models (BASE_MODELS, in R2 under models/<id>/) that are not uploaded yet are reported by /healthz and are
 * unknown models until they appear (looked for again every MISSING_MODELS_RETRY_MS); no route fails because of
 * them, and the cron trigger (lease and replica sweep) does not read them at all.
 *
 * Keep Node-only modules (better-sqlite3, node:fs, onnxruntime-node) out of this file's import graph;
 * tests/build/worker-bundle.test.ts checks the bundle.
 */
import { createApp } from '../app';
import { createD1Database } from '../adapters/d1-database';
import { R2BlobStore, r2PresignedUrlSigner } from '../adapters/r2-blob-store';
import { createHmacUrlSigner } from '../adapters/signed-urls';
import { ConfiguredEngineRegistry } from '../engine/registry';
import { RemoteEngine } from '../engine/remote-engine';
import { expireLeases } from '../jobs/lease-expiry';
import { ReplicaEngineRegistry } from '../replicas/replica-engines';
import { sweepReplicas } from '../replicas/store';
import { createIds, systemClock } from '../lib/ids';
import { tenantLimitsFromEnv } from '../tenants/limits';
import { DEFAULT_LIMITS, defaultConfig, type BlobUrlSigner, type Config, type Deps } from '../ports';
import { EVERY_UPLOADED_MODEL, loadBaseModelsFromR2 } from './worker-models';

export interface WorkerEnv {
  DB: D1Database;
  BLOBS: R2Bucket;
  /** Secret: bearer token of gpu-workers on /internal. */
  WORKER_TOKEN: string;
  /** Secret: HMAC key of /blobs URLs (required in "worker-hmac" mode). */
  SIGNING_SECRET?: string;
  BLOB_URL_MODE: string;
  /** Secrets of "r2-presigned" mode: an R2 API token pair and the account of the S3 endpoint. */
  R2_ACCOUNT_ID?: string;
  R2_ACCESS_KEY_ID?: string;
  R2_SECRET_ACCESS_KEY?: string;
  /** The bucket bound as BLOBS, by name (presigned URLs address it through the S3 endpoint). */
  R2_BUCKET_NAME?: string;
  /** The S3 endpoint of presigned URLs; default https://<R2_ACCOUNT_ID>.r2.cloudflarestorage.com. */
  R2_ENDPOINT?: string;
  /** JSON {"<model id>": {"url": "https://serve-host", "context_length": 32768}}: remote engines per model. */
  REMOTE_ENGINES?: string;
  /** Secret: bearer token sent to the remote engines. */
  REMOTE_ENGINE_TOKEN?: string;
  /** Comma-separated base model ids, each stored in R2 under models/<id>/ (manifest.json and the model files). */
  BASE_MODELS?: string;
  SIGNED_URL_SECONDS?: string;
  MAX_FILE_BYTES?: string;
  MAX_JSON_BODY_BYTES?: string;
  LEASE_SECONDS?: string;
  MAX_ATTEMPTS?: string;
  /** Per-tenant limits (src/tenants/limits.ts); unset: the defaults. */
  TENANT_REQUESTS_PER_MINUTE?: string;
  TENANT_CONCURRENT_SAMPLES?: string;
  TENANT_ACTIVE_JOBS?: string;
}

class ConfigurationError extends Error {}

function required(env: WorkerEnv, name: keyof WorkerEnv): string {
  const value = env[name];
  if (typeof value !== 'string' || value === '') throw new ConfigurationError(`${name} is not configured`);
  return value;
}

function positiveInt(env: WorkerEnv, name: keyof WorkerEnv, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new ConfigurationError(`${name} must be a positive integer, got '${raw}'`);
  return value;
}

function tenantLimits(env: WorkerEnv) {
  try {
    return tenantLimitsFromEnv(env as unknown as Record<string, unknown>);
  } catch (err) {
    throw new ConfigurationError((err as Error).message);
  }
}

/** The blob URL signer BLOB_URL_MODE names, plus the HMAC secret the app's /blobs routes check. */
function blobUrls(env: WorkerEnv): { signer: BlobUrlSigner; signingSecret: string } {
  switch (env.BLOB_URL_MODE) {
    case 'r2-presigned': {
      const signer = r2PresignedUrlSigner(
        {
          accountId: required(env, 'R2_ACCOUNT_ID'),
          accessKeyId: required(env, 'R2_ACCESS_KEY_ID'),
          secretAccessKey: required(env, 'R2_SECRET_ACCESS_KEY'),
          bucketName: required(env, 'R2_BUCKET_NAME'),
          ...(env.R2_ENDPOINT ? { endpoint: env.R2_ENDPOINT } : {}),
        },
        systemClock,
      );
      // No /blobs URL is ever issued in this mode; a random key (never empty) keeps those routes unforgeable.
      return { signer, signingSecret: env.SIGNING_SECRET || createIds(systemClock).secret(32) };
    }
    case 'worker-hmac': {
      const signingSecret = required(env, 'SIGNING_SECRET');
      return { signer: createHmacUrlSigner(signingSecret), signingSecret };
    }
    default:
      throw new ConfigurationError(`BLOB_URL_MODE must be "r2-presigned" or "worker-hmac", got '${env.BLOB_URL_MODE}'`);
  }
}

/** The remote engines REMOTE_ENGINES configures, or undefined when it is empty (no inference here). */
function remoteEngines(env: WorkerEnv): ConfiguredEngineRegistry | undefined {
  const raw = env.REMOTE_ENGINES?.trim();
  if (!raw) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigurationError('REMOTE_ENGINES is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigurationError('REMOTE_ENGINES must be a JSON object of model id -> {url, context_length}');
  const configured: Record<string, () => Promise<RemoteEngine>> = {};
  for (const [modelId, spec] of Object.entries(parsed as Record<string, { url?: unknown; context_length?: unknown }>)) {
    const url = typeof spec?.url === 'string' && URL.canParse(spec.url) ? new URL(spec.url) : null;
    if (!url || !/^https?:$/.test(url.protocol)) throw new ConfigurationError(`REMOTE_ENGINES.${modelId}.url must be an http(s) URL`);
    const contextLength = spec.context_length;
    if (typeof contextLength !== 'number' || !Number.isInteger(contextLength) || contextLength < 1)
      throw new ConfigurationError(`REMOTE_ENGINES.${modelId}.context_length must be a positive integer`);
    const token = env.REMOTE_ENGINE_TOKEN || undefined;
    configured[modelId] = async () => new RemoteEngine({ modelId, url: url.toString(), contextLength, token });
  }
  return new ConfiguredEngineRegistry({ configured });
}

/**
 * The Deps of this env. `withBaseModels: false` (the cron trigger) skips reading the base models from R2, so a
 * missing or broken model never stops the lease sweep.
 */
export async function workerDeps(env: WorkerEnv, { withBaseModels = true } = {}): Promise<Deps> {
  const { signer, signingSecret } = blobUrls(env);
  const blobs = new R2BlobStore(env.BLOBS);
  const base = withBaseModels ? await loadBaseModelsFromR2(env.BLOBS, blobs, env.BASE_MODELS) : { models: [], missing: [] };
  for (const missing of base.missing) console.warn(`base model missing: ${missing}`);
  const config: Config = defaultConfig({
    workerToken: required(env, 'WORKER_TOKEN'),
    signingSecret,
    baseModels: base.models,
    limits: {
      ...DEFAULT_LIMITS,
      maxFileBytes: positiveInt(env, 'MAX_FILE_BYTES', DEFAULT_LIMITS.maxFileBytes),
      maxJsonBodyBytes: positiveInt(env, 'MAX_JSON_BODY_BYTES', DEFAULT_LIMITS.maxJsonBodyBytes),
    },
    tenantLimits: tenantLimits(env),
    leaseSeconds: positiveInt(env, 'LEASE_SECONDS', 120),
    maxAttempts: positiveInt(env, 'MAX_ATTEMPTS', 3),
    signedUrlSeconds: positiveInt(env, 'SIGNED_URL_SECONDS', 3600),
  });
  const deps: Deps = {
    database: createD1Database(env.DB),
    blobs,
    blobUrls: signer,
    clock: systemClock,
    ids: createIds(systemClock),
    config,
    missingBaseModels: base.missing,
  };
  // Live serving replicas first; REMOTE_ENGINES (fixed URLs per model) when none is live.
  deps.engines = new ReplicaEngineRegistry(() => deps, remoteEngines(env));
  return deps;
}

type App = ReturnType<typeof createApp>;
/** How soon an isolate whose base models were incomplete looks for them again; with BASE_MODELS = "*", for new ones. */
const MISSING_MODELS_RETRY_MS = 10_000;
const DISCOVER_MODELS_EVERY_MS = 60_000;
// One app per isolate and env (bindings and vars do not change within an isolate); rebuilt while models are missing.
const apps = new WeakMap<WorkerEnv, { app: Promise<App>; until: number }>();

function appFor(env: WorkerEnv): Promise<App> {
  const cached = apps.get(env);
  if (cached && Date.now() < cached.until) return cached.app;
  const entry: { app: Promise<App>; until: number } = { app: null as never, until: Infinity };
  entry.app = workerDeps(env).then((deps) => {
    if (deps.missingBaseModels?.length) entry.until = Date.now() + MISSING_MODELS_RETRY_MS;
    else if (env.BASE_MODELS?.trim() === EVERY_UPLOADED_MODEL) entry.until = Date.now() + DISCOVER_MODELS_EVERY_MS;
    return createApp(deps);
  });
  // A failed start (e.g. missing secret) is retried on the next request rather than cached.
  entry.app.catch(() => apps.delete(env));
  apps.set(env, entry);
  return entry.app;
}

export default {
  async fetch(request, env, ctx) {
    let app: App;
    try {
      app = await appFor(env);
    } catch (err) {
      if (!(err instanceof ConfigurationError)) throw err;
      console.error('worker misconfigured:', err.message);
      return Response.json(
        { error: { message: 'Service misconfigured.', type: 'server_error', param: null, code: 'misconfigured' } },
        { status: 500, headers: { 'x-request-id': crypto.randomUUID() } },
      );
    }
    return app.fetch(request, env, ctx);
  },

  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      workerDeps(env, { withBaseModels: false }).then(async (deps) => {
        await expireLeases(deps);
        await sweepReplicas(deps);
      }),
    );
  },
} satisfies ExportedHandler<WorkerEnv>;
