/**
 * What every per-tenant limit shares: the environment variables that configure them (one parser for the Node and the
 * Workers entry), and the 429 answer: the error envelope with `type: rate_limit_error`, `code: rate_limit_exceeded`,
 * a `retry-after` in seconds, and OpenAI-style `x-ratelimit-*` headers naming the resource that ran out
 * (`-requests`, `-samples`, `-jobs`).
 *
 * The limits themselves: requests per minute (./request-rate.ts, middleware/tenant-rate-limit.ts), concurrent
 * reasoning samples (./sample-budget.ts), unfinished fine-tuning jobs (./job-quota.ts).
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ApiError, ErrorSchema } from '../errors';
import { DEFAULT_TENANT_LIMITS, type TenantLimits } from '../ports';
import type { AppEnv } from '../router';

/** The environment variable of each limit (Node: process.env; Workers: wrangler.toml [vars]). */
export const TENANT_LIMIT_ENV: Record<keyof TenantLimits, string> = {
  requestsPerMinute: 'TENANT_REQUESTS_PER_MINUTE',
  concurrentSamples: 'TENANT_CONCURRENT_SAMPLES',
  activeJobs: 'TENANT_ACTIVE_JOBS',
};

/** Tenant limits from the environment; an unset or empty variable keeps the default. Throws naming a bad value. */
export function tenantLimitsFromEnv(env: Record<string, unknown>): TenantLimits {
  const limits = { ...DEFAULT_TENANT_LIMITS };
  for (const [field, name] of Object.entries(TENANT_LIMIT_ENV) as [keyof TenantLimits, string][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (typeof raw !== 'string' || !Number.isInteger(value) || value <= 0)
      throw new Error(`${name} must be a positive integer, got '${String(raw)}'`);
    limits[field] = value;
  }
  return limits;
}

/** `Ns`, the duration format of OpenAI's x-ratelimit-reset-* headers. */
export const resetIn = (ms: number) => `${Math.max(0, Math.ceil(ms / 1000))}s`;

/** Sets response headers on the context (they survive into an error answer, see errors.ts onError). */
export function setHeaders(c: Context, headers: Record<string, string>) {
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
}

/**
 * The 429 of a limit: `headers` are set on the context first, so the envelope the global error handler writes
 * carries them. `param` names the request field that asked for too much, where one did.
 */
export function rateLimited(
  c: Context,
  message: string,
  opts: { retryAfterSeconds: number; headers: Record<string, string>; param?: string | null },
): ApiError {
  setHeaders(c, opts.headers);
  return new ApiError(429, message, {
    type: 'rate_limit_error',
    code: 'rate_limit_exceeded',
    param: opts.param ?? null,
    retryAfter: Math.max(1, Math.ceil(opts.retryAfterSeconds)),
  });
}

/** The 429 every tenant-limited route documents: the envelope plus the headers that say when to come back. */
export const RATE_LIMITED_RESPONSE = {
  description:
    'A per-organization limit was reached (`rate_limit_exceeded`): requests per minute, concurrent reasoning samples ' +
    '(`param: "n"`, headers `x-ratelimit-*-samples`) or unfinished fine-tuning jobs (headers `x-ratelimit-*-jobs`). ' +
    'Retry after `retry-after` seconds.',
  headers: {
    'retry-after': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' as const } },
    'x-ratelimit-limit-requests': { description: 'Requests allowed per minute.', schema: { type: 'integer' as const } },
    'x-ratelimit-remaining-requests': { description: 'Requests left in the current minute.', schema: { type: 'integer' as const } },
    'x-ratelimit-reset-requests': { description: 'Time until the current minute ends, e.g. `17s`.', schema: { type: 'string' as const } },
  },
};

/**
 * Adds the 429 to every route of `router` (the /v1 router, all of whose routes the limits guard), so a route file
 * never has to remember it. Call after the resource routers are mounted and before the router itself is mounted.
 */
export function documentTenantLimits(router: OpenAPIHono<AppEnv>) {
  const content = { 'application/json': { schema: ErrorSchema } };
  for (const def of router.openAPIRegistry.definitions) {
    if (def.type !== 'route') continue;
    def.route = { ...def.route, responses: { ...def.route.responses, 429: { ...RATE_LIMITED_RESPONSE, content } } };
  }
}
