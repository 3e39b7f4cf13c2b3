/**
 * The Workers tests' handle on the deployed shape of the API: requests go through the Worker's own fetch handler
 * (src/entry/worker.ts, with wrangler.toml's vars and the test secrets) into D1 and R2. Tenants and keys are
 * created the way scripts/create-api-key.ts does, but in D1.
 */
import { SELF, env } from 'cloudflare:test';
import { createD1Database } from '../../src/adapters/d1-database';
import { apiKeys, tenants } from '../../src/db/schema';
import { createIds, systemClock } from '../../src/lib/ids';
import { newApiKey } from '../../src/middleware/auth';
import type { Fetch } from '../helpers/http';

export const BASE = 'http://api.test';

/** `fetch` into the Worker (signed /blobs URLs included, since they point at the same origin). */
export const workerFetch: Fetch = (url, init) => SELF.fetch(new URL(url, BASE).toString(), init);

export const database = () => createD1Database(env.DB);

export async function newTenant(name = 'acme'): Promise<{ tenantId: string; key: string }> {
  const ids = createIds(systemClock);
  const { db } = database();
  const tenantId = ids.next('org');
  await db.insert(tenants).values({ id: tenantId, name, createdAt: Date.now() });
  const k = newApiKey(ids);
  await db
    .insert(apiKeys)
    .values({ id: ids.next('key'), tenantId, keyHash: k.hash, prefix: k.prefix, name: 'workers-test', createdAt: Date.now() });
  return { tenantId, key: k.key };
}

/** Rows of a table (optionally only a tenant's), read straight from D1. */
export async function countRows(table: string, where = '1=1', ...bind: unknown[]): Promise<number> {
  const row = await env.DB.prepare(`select count(*) as n from ${table} where ${where}`)
    .bind(...bind)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

export async function blobKeys(prefix: string): Promise<string[]> {
  const listed = await env.BLOBS.list({ prefix });
  return listed.objects.map((o) => o.key);
}
