/**
 * The Node deployment's adapters: a SQLite file and a blob folder under DATA_DIR, HMAC-signed local blob URLs,
 * base models from MODELS_DIR, and secrets from the environment or generated once into DATA_DIR/secrets.json.
 * Used by src/entry/node.ts, scripts/create-api-key.ts and the tests.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { openSqliteDatabase, type SqliteDatabase, type SynchronousLevel } from '../adapters/sqlite-database';
import { blobRootOf, createLocalBlobStore, removeOrphanedUploads } from '../adapters/local-blob-store';
import { createHmacUrlSigner } from '../adapters/signed-urls';
import { createIds, systemClock } from '../lib/ids';
import { defaultConfig, type Clock, type Config, type Deps } from '../ports';
import { releaseIdempotencyReservations } from '../middleware/idempotency';
import { loadBaseModels } from './base-models';

export const SCALAR_BUNDLE = fileURLToPath(new URL('../routes/docs/assets/scalar-api-reference-1.72.1.js', import.meta.url));
export const DEFAULT_MODELS_DIR = fileURLToPath(new URL('../../models', import.meta.url));

export interface NodeDeps extends Deps {
  database: SqliteDatabase;
}

export interface NodeOptions {
  dataDir: string;
  modelsDir?: string;
  workerToken?: string;
  signingSecret?: string;
  clock?: Clock;
  config?: Partial<Config>;
  /** SQLite durability (src/adapters/sqlite-database.ts); default NORMAL. */
  synchronous?: SynchronousLevel;
}

/**
 * DATA_DIR holds every tenant's data, the API keys' hashes and the secrets: it is created 0700, and a folder that
 * exists already is narrowed to 0700 (files inside are made 0600 as they are written or opened).
 */
async function createPrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

async function restrictFiles(dir: string, names: string[]): Promise<void> {
  await Promise.all(names.map((n) => chmod(join(dir, n), 0o600).catch(() => undefined)));
}

/**
 * Start-up housekeeping of a Node API process that owns DATA_DIR: removes the temporary files of uploads that a
 * crash interrupted and releases the idempotency reservations of requests that died with the previous process.
 */
export async function recoverAfterCrash(deps: NodeDeps, dataDir: string): Promise<{ orphanedUploads: number; reservations: number }> {
  const orphanedUploads = await removeOrphanedUploads(blobRootOf(resolve(dataDir)));
  const reservations = await releaseIdempotencyReservations(deps);
  return { orphanedUploads, reservations };
}

/**
 * WORKER_TOKEN / SIGNING_SECRET from the options (env), else generated once and kept in DATA_DIR/secrets.json
 * (only generated values are written there; secrets given by the environment never touch the disk).
 */
async function secrets(dataDir: string, given: { workerToken?: string; signingSecret?: string }) {
  const path = join(dataDir, 'secrets.json');
  const stored = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as { workerToken?: string; signingSecret?: string };
  const ids = createIds(systemClock);
  const next = { ...stored };
  if (!given.workerToken && !next.workerToken) next.workerToken = `wt-${ids.secret(32)}`;
  if (!given.signingSecret && !next.signingSecret) next.signingSecret = ids.secret(32);
  if (next.workerToken !== stored.workerToken || next.signingSecret !== stored.signingSecret)
    await writeFile(path, JSON.stringify(next, null, 2), { mode: 0o600 });
  return { workerToken: given.workerToken || next.workerToken!, signingSecret: given.signingSecret || next.signingSecret! };
}

export async function buildNodeDeps(opts: NodeOptions): Promise<NodeDeps> {
  const dataDir = resolve(opts.dataDir);
  await createPrivateDir(dataDir);
  const database = openSqliteDatabase(join(dataDir, 'api.sqlite'), { synchronous: opts.synchronous });
  await restrictFiles(dataDir, ['api.sqlite', 'api.sqlite-wal', 'api.sqlite-shm']);
  const blobs = createLocalBlobStore(blobRootOf(dataDir));
  const { workerToken, signingSecret } = await secrets(dataDir, opts);
  const clock = opts.clock ?? systemClock;
  const baseModels = await loadBaseModels(opts.modelsDir ?? DEFAULT_MODELS_DIR, blobs);
  return {
    database,
    blobs,
    blobUrls: createHmacUrlSigner(signingSecret),
    clock,
    ids: createIds(clock),
    config: defaultConfig({ workerToken, signingSecret, baseModels, ...opts.config }),
    docsAssets: { scalarBundle: () => readFile(SCALAR_BUNDLE, 'utf8') },
  };
}
