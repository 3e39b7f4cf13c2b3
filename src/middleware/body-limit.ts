/**
 * Size limit of JSON request bodies (Limits.maxJsonBodyBytes), answered with 413 in the error envelope.
 * Streaming uploads (file upload, signed blob PUT) enforce their own, larger limits while they stream.
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ApiError } from '../errors';
import type { AppEnv } from '../router';

export const jsonBodyLimit: MiddlewareHandler<AppEnv> = async (c, next) => {
  const max = c.get('deps').config.limits.maxJsonBodyBytes;
  return bodyLimit({
    maxSize: max,
    onError: () => {
      throw new ApiError(413, `Request body larger than ${max} bytes.`, { code: 'body_too_large' });
    },
  })(c, next);
};
