/**
 * Node entry point: `npm run dev:node` (or `npm start`). Serves the app of src/app.ts with @hono/node-server on
 * HOST:PORT (default 127.0.0.1:8787), keeping all state in DATA_DIR (default ./.data: api.sqlite, blobs/,
 * secrets.json). Applies migrations at start, registers the base models of MODELS_DIR (default ./models), and
 * runs the lease sweep every SWEEP_SECONDS (default 15) over leases of LEASE_SECONDS (default 120).
 * SQLITE_SYNCHRONOUS (NORMAL, the default, or FULL) sets the database's durability. At start it removes orphaned
 * upload files and releases idempotency reservations of the previous process (it must be DATA_DIR's only API).
 * WORKER_TOKEN and SIGNING_SECRET come from the environment or are generated once into DATA_DIR/secrets.json.
 * Create an API key with `npm run create-api-key`. Inference engines: ENGINE_MODELS (see below).
 */
import { serve } from '@hono/node-server';
import { createApp } from '../app';
import { expireLeases } from '../jobs/lease-expiry';
import { tenantLimitsFromEnv } from '../tenants/limits';
import { SYNCHRONOUS_LEVELS, type SynchronousLevel } from '../adapters/sqlite-database';
import { buildNodeDeps, recoverAfterCrash } from './node-deps';
import { createNodeEngineRegistry, parseEngineModels } from '../engine/node-engines';
import { ReplicaEngineRegistry } from '../replicas/replica-engines';
import { sweepReplicas } from '../replicas/store';
import { join } from 'node:path';

const env = process.env;

/** SQLITE_SYNCHRONOUS: NORMAL (default) or FULL; see src/adapters/sqlite-database.ts. */
function synchronousLevel(value: string | undefined): SynchronousLevel | undefined {
  if (value === undefined || value === '') return undefined;
  const level = value.toUpperCase() as SynchronousLevel;
  if (!SYNCHRONOUS_LEVELS.includes(level)) throw new Error(`SQLITE_SYNCHRONOUS must be one of ${SYNCHRONOUS_LEVELS.join(', ')}, got '${value}'`);
  return level;
}
function positiveNumber(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${value}'`);
  return n;
}
const port = Number(env.PORT ?? 8787);
const host = env.HOST ?? '127.0.0.1';
const dataDir = env.DATA_DIR ?? './.data';

const deps = await buildNodeDeps({
  dataDir,
  modelsDir: env.MODELS_DIR,
  workerToken: env.WORKER_TOKEN,
  signingSecret: env.SIGNING_SECRET,
  // LEASE_SECONDS: how long a claim / heartbeat holds a job (default 120); the e2e tests use a short lease
  // TENANT_REQUESTS_PER_MINUTE, TENANT_CONCURRENT_SAMPLES, TENANT_ACTIVE_JOBS: per-tenant limits (src/tenants/limits.ts)
  config: {
    ...(env.LEASE_SECONDS ? { leaseSeconds: Number(env.LEASE_SECONDS) } : {}),
    tenantLimits: tenantLimitsFromEnv(env),
    // WORKER_DEVICE_MEMORY_GB: memory of one worker device; a job estimated above it is refused (default 80)
    ...(env.WORKER_DEVICE_MEMORY_GB ? { workerDeviceMemoryBytes: positiveNumber('WORKER_DEVICE_MEMORY_GB', env.WORKER_DEVICE_MEMORY_GB) * 1024 ** 3 } : {}),
  },
  synchronous: synchronousLevel(env.SQLITE_SYNCHRONOUS),
});
const recovered = await recoverAfterCrash(deps, dataDir);
if (recovered.orphanedUploads || recovered.reservations)
  console.log(
    `start-up: removed ${recovered.orphanedUploads} orphaned upload file(s), released ${recovered.reservations} idempotency reservation(s)`,
  );
// Engines: live serving replicas (`python -m softgrpo.serve --api ...`, src/replicas/) first; without one,
// ENGINE_MODELS (JSON, src/engine/node-engines.ts) picks onnx or remote per model, and every other model with a
// model.onnx (base models of MODELS_DIR, fine-tuned checkpoints) is served by onnxruntime-node from the blob store.
deps.engines = new ReplicaEngineRegistry(
  () => deps,
  createNodeEngineRegistry({
    models: env.ENGINE_MODELS ? parseEngineModels(env.ENGINE_MODELS) : {},
    blobs: deps.blobs,
    cacheDir: join(dataDir, 'model-cache'),
    // MODEL_CACHE_BYTES (default 2 GiB) / MODEL_CACHE_MODELS (default 4): the memory budget of models served from
    // the blob store; the least recently used one is evicted beyond either (src/engine/model-cache.ts)
    ...(env.MODEL_CACHE_BYTES ? { maxLoadedCheckpointBytes: positiveNumber('MODEL_CACHE_BYTES', env.MODEL_CACHE_BYTES) } : {}),
    ...(env.MODEL_CACHE_MODELS ? { maxLoadedCheckpoints: positiveNumber('MODEL_CACHE_MODELS', env.MODEL_CACHE_MODELS) } : {}),
  }),
);
const app = createApp(deps);

const sweepMs = Number(env.SWEEP_SECONDS ?? 15) * 1000;
const sweep = setInterval(() => {
  expireLeases(deps).catch((err) => console.error('lease sweep failed:', err));
  sweepReplicas(deps).catch((err) => console.error('replica sweep failed:', err));
}, sweepMs);
sweep.unref();

const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => {
  console.log(
    `API listening on http://${host}:${info.port} (DATA_DIR=${dataDir}; base models: ${deps.config.baseModels.map((m) => m.id).join(', ') || 'none'})`,
  );
});

const shutdown = () => {
  clearInterval(sweep);
  server.close(() => {
    deps.database.close();
    process.exit(0);
  });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
