/**
 * Credentials. User API keys (`Authorization: Bearer sk-...`) are stored as SHA-256 hashes and map to a tenant;
 * every /v1 handler reads `c.get('tenantId')` and scopes its queries by it. The worker token guards /internal;
 * a user key is refused there (403) and the worker token is not a user key (401 on /v1).
 */
import { and, eq, isNull } from 'drizzle-orm';
import type { MiddlewareHandler } from 'hono';
import { apiKeys } from '../db/schema';
import { ApiError } from '../errors';
import { sha256Hex, timingSafeEqualStr } from '../lib/hash';
import type { Ids } from '../ports';
import type { AppEnv } from '../router';

export const API_KEY_PREFIX = 'sk-';

export function bearerToken(header: string | undefined): string | null {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return m ? m[1] : null;
}

export const hashApiKey = (key: string) => sha256Hex(key);

/** A new user API key: returned once to the caller, stored only as its hash. */
export function newApiKey(ids: Ids): { key: string; hash: string; prefix: string } {
  const key = `${API_KEY_PREFIX}${ids.secret(32)}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 8) };
}

export const requireApiKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.header('authorization'));
  if (!token) {
    c.header('www-authenticate', 'Bearer');
    throw new ApiError(401, 'Missing API key: send "Authorization: Bearer <key>".', { code: 'missing_api_key' });
  }
  const { db } = c.get('deps').database;
  const row = await db
    .select({ tenantId: apiKeys.tenantId })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hashApiKey(token)), isNull(apiKeys.revokedAt)))
    .get();
  if (!row) throw new ApiError(401, 'Invalid API key.', { code: 'invalid_api_key' });
  c.set('tenantId', row.tenantId);
  c.set('idempotencyScope', `tenant:${row.tenantId}`);
  await next();
};

export const requireWorkerToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.header('authorization'));
  const expected = c.get('deps').config.workerToken;
  if (!token) throw new ApiError(401, 'Missing worker token.', { code: 'missing_worker_token' });
  if (!timingSafeEqualStr(sha256Hex(token), sha256Hex(expected))) {
    if (token.startsWith(API_KEY_PREFIX))
      throw new ApiError(403, 'User API keys cannot call /internal routes.', { code: 'worker_token_required' });
    throw new ApiError(401, 'Invalid worker token.', { code: 'invalid_worker_token' });
  }
  c.set('idempotencyScope', 'worker');
  await next();
};
