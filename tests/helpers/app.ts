/**
 * Builds the real app for a test: the Node adapters on a temp SQLite file and a temp blob folder, with one small
 * base model folder ("tiny-arith"), a controllable clock, and helpers to create tenants/keys and count rows.
 */
import { copyFileSync, mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp, type App } from '../../src/app';
import { buildNodeDeps, type NodeDeps } from '../../src/entry/node-deps';
import { apiKeys, tenants } from '../../src/db/schema';
import { newApiKey } from '../../src/middleware/auth';
import type { Clock, Config } from '../../src/ports';

export const WORKER_TOKEN = 'wt-test-worker-token';
const TINY_MODEL = fileURLToPath(new URL('../../models/tiny', import.meta.url));

export class ManualClock implements Clock {
  constructor(public ms = Date.now()) {}
  now() {
    return this.ms;
  }
  advance(seconds: number) {
    this.ms += seconds * 1000;
  }
}

export interface TestApp {
  app: App;
  deps: NodeDeps;
  clock: ManualClock;
  dataDir: string;
  /** `fetch` against the app in-process (signed URLs included). */
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  newTenant(name?: string): Promise<{ tenantId: string; key: string }>;
  rows(): Record<'tenants' | 'api_keys' | 'files' | 'jobs' | 'job_events' | 'checkpoints' | 'idempotency_keys', number>;
  blobCount(prefix?: string): number;
  close(): void;
}

function writeBaseModel(dir: string) {
  const folder = join(dir, 'tiny');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }));
  // The bundled tiny model's real tokenizer: job creation renders and tokenizes every training prompt with it.
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TINY_MODEL, name), join(folder, name));
  writeFileSync(
    join(folder, 'manifest.json'),
    JSON.stringify({ format: 'softgrpo-model/1', base: 'tiny-arith', step: 0, context_length: 512, recommended_hyperparameters: { group_size: 4 } }),
  );
}

export async function makeTestApp(opts: { config?: Partial<Config> } = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'api-test-'));
  const modelsDir = join(dataDir, 'models');
  writeBaseModel(modelsDir);
  const clock = new ManualClock();
  const deps = await buildNodeDeps({
    dataDir: join(dataDir, 'data'),
    modelsDir,
    workerToken: WORKER_TOKEN,
    signingSecret: 'test-signing-secret',
    clock,
    config: { sse: { pollMs: 20, keepAliveMs: 50, maxStreamMs: 10_000 }, ...opts.config },
  });
  const app = createApp(deps);
  const { sqlite } = deps.database;
  return {
    app,
    deps,
    clock,
    dataDir,
    fetch: async (url, init) => app.request(url, init),
    async newTenant(name = 'acme') {
      const tenantId = deps.ids.next('org');
      await deps.database.db.insert(tenants).values({ id: tenantId, name, createdAt: clock.now() });
      const k = newApiKey(deps.ids);
      await deps.database.db
        .insert(apiKeys)
        .values({ id: deps.ids.next('key'), tenantId, keyHash: k.hash, prefix: k.prefix, name: 'test', createdAt: clock.now() });
      return { tenantId, key: k.key };
    },
    rows() {
      const count = (t: string) => (sqlite.prepare(`select count(*) as n from ${t}`).get() as { n: number }).n;
      return {
        tenants: count('tenants'),
        api_keys: count('api_keys'),
        files: count('files'),
        jobs: count('jobs'),
        job_events: count('job_events'),
        checkpoints: count('checkpoints'),
        idempotency_keys: count('idempotency_keys'),
      };
    },
    blobCount(prefix = 'files') {
      const root = join(dataDir, 'data', 'blobs', prefix);
      const walk = (d: string): number => {
        let n = 0;
        let entries: Dirent[] = [];
        try {
          entries = readdirSync(d, { withFileTypes: true });
        } catch {
          return 0;
        }
        for (const e of entries) n += e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.sha256') ? 0 : 1;
        return n;
      };
      return walk(root);
    },
    close() {
      deps.database.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
