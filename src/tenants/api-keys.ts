/**
 * API keys of a tenant: list, create, revoke. Shared by the tenant's own routes (/v1/api_keys) and the operator's
 * script (scripts/api-keys.ts). A key is stored only as its SHA-256 (src/middleware/auth.ts) and the auth check
 * reads the database on every request, so a revoked key is refused (401) from its very next request.
 */
import { and, desc, eq, isNull } from 'drizzle-orm';
import { apiKeys } from '../db/schema';
import { newApiKey } from '../middleware/auth';
import type { Db, Ids } from '../ports';

export type ApiKeyRow = typeof apiKeys.$inferSelect;

/** The keys of one tenant (or of every tenant, for the operator), newest first. */
export async function listApiKeys(db: Db, tenantId: string | null): Promise<ApiKeyRow[]> {
  const query = db.select().from(apiKeys);
  return tenantId === null
    ? query.orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).all()
    : query.where(eq(apiKeys.tenantId, tenantId)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).all();
}

/** A new key for the tenant: the row, and the key itself, which exists only in this return value. */
export async function createApiKey(db: Db, ids: Ids, now: number, tenantId: string, name: string) {
  const key = newApiKey(ids);
  const [row] = await db
    .insert(apiKeys)
    .values({ id: ids.next('key'), tenantId, keyHash: key.hash, prefix: key.prefix, name, createdAt: now })
    .returning();
  return { row: row!, key: key.key };
}

/**
 * Revokes a key (of `tenantId`, or of any tenant when null). Revoking an already revoked key keeps its first
 * revocation time. Returns the row, or null when no such key exists (for this tenant).
 */
export async function revokeApiKey(db: Db, tenantId: string | null, id: string, now: number): Promise<ApiKeyRow | null> {
  const owned = tenantId === null ? eq(apiKeys.id, id) : and(eq(apiKeys.id, id), eq(apiKeys.tenantId, tenantId));
  await db.update(apiKeys).set({ revokedAt: now }).where(and(owned, isNull(apiKeys.revokedAt)));
  return (await db.select().from(apiKeys).where(owned).get()) ?? null;
}
