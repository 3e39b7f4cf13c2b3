/** The Hono environment every router shares, and the factory for resource routers (validation errors -> 400). */
import { OpenAPIHono } from '@hono/zod-openapi';
import { validationHook } from './errors';
import type { Deps } from './ports';

export type AppEnv = {
  Variables: {
    deps: Deps;
    requestId: string;
    /** Set by the API-key middleware on /v1 routes. */
    tenantId: string;
    /** `tenant:<id>` on /v1, `worker` on /internal: the namespace of idempotency keys. */
    idempotencyScope: string;
    /** Streaming uploads: the request's meaning as a hash (see middleware/idempotency.ts). */
    uploadFingerprint?: string;
    /** Streaming uploads: validate and fingerprint only, store nothing (a retry of a used Idempotency-Key). */
    idempotencyProbe?: boolean;
    /** A finished event stream as stored for Idempotency-Key replays (src/reasoning/event-stream.ts). */
    streamReplay?: string;
  };
};

export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook as never });
}
