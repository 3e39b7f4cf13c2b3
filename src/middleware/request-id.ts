/**
 * `x-request-id` on every response, errors included: the caller's value when it is a sane token, else a new id.
 * Registered first, so it wraps everything (the error handler's responses reach it as `c.res`).
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../router';

const SANE = /^[A-Za-z0-9._:-]{1,128}$/;

export const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const given = c.req.header('x-request-id');
  const id = given && SANE.test(given) ? given : c.get('deps').ids.next('req');
  c.set('requestId', id);
  await next();
  try {
    c.res.headers.set('x-request-id', id);
  } catch {
    // Immutable headers (a response passed through from fetch): copy it once.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set('x-request-id', id);
  }
};
