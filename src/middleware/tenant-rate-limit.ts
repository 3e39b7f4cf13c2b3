/**
 * Requests per minute per tenant on /v1 (after the API key names the tenant, before idempotency so a refused request
 * reserves no key). Every /v1 answer carries OpenAI's `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`
 * and `x-ratelimit-reset-requests`; over the limit the answer is 429 `rate_limit_exceeded` with `retry-after` = the
 * seconds until the window ends. /internal, /blobs, /healthz and the documentation are not counted.
 */
import type { MiddlewareHandler } from 'hono';
import { rateLimited, setHeaders } from '../tenants/limits';
import { countRequest, requestRateHeaders } from '../tenants/request-rate';
import type { AppEnv } from '../router';

export const tenantRateLimit: MiddlewareHandler<AppEnv> = async (c, next) => {
  const deps = c.get('deps');
  const now = deps.clock.now();
  const window = await countRequest(deps.database.db, c.get('tenantId'), now, deps.config.tenantLimits.requestsPerMinute);
  const headers = requestRateHeaders(window, now);
  if (window.used > window.limit)
    throw rateLimited(c, `Rate limit reached: ${window.limit} requests per minute for this organization. Retry after the window resets.`, {
      retryAfterSeconds: (window.resetsAt - now) / 1000,
      headers,
    });
  setHeaders(c, headers);
  await next();
  // Again on the final answer: a handler may return a Response it built itself (an idempotent replay).
  setHeaders(c, headers);
};
