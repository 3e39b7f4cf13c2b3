/**
 * `createApp(deps)`: the whole HTTP API, shared by the Node entry (src/entry/node.ts), the Workers entry
 * (src/entry/worker.ts) and the tests. Only `deps` (src/ports.ts) differ between them.
 *
 *   /v1/files, /v1/finetune (= /v1/fine_tuning/jobs), /v1/models   user API keys (tenant-scoped)
 *   /internal/jobs/...                                            worker token (GPU workers pull jobs)
 *   /blobs/<key>?method=&exp=&sig=                                signed URLs (no token)
 *   /openapi.json, /docs, /healthz                                public
 */
import { modelUploadsRouter } from './routes/model-uploads';
import type { Context } from 'hono';
import { OpenAPIHono } from '@hono/zod-openapi';
import { onError, onNotFound, validationHook } from './errors';
import { requireApiKey, requireWorkerToken } from './middleware/auth';
import { jsonBodyLimit } from './middleware/body-limit';
import { idempotency } from './middleware/idempotency';
import { tenantRateLimit } from './middleware/tenant-rate-limit';
import { requestId } from './middleware/request-id';
import type { Deps } from './ports';
import { createRouter, type AppEnv } from './router';
import { blobsRouter } from './routes/blobs';
import { docsRouter } from './routes/docs';
import { filesRouter } from './routes/files';
import { finetuneRouter } from './routes/finetune';
import { internalCheckpointsRouter } from './routes/internal/checkpoints';
import { internalRouter } from './routes/internal';
import { internalReplicasRouter } from './routes/internal/replicas';
import { modelsRouter } from './routes/models';
import { apiKeysRouter } from './routes/api-keys';
import { chatRouter } from './routes/chat';
import { completionsRouter } from './routes/completions';
import { dashboardRouter } from './routes/dashboard';
import { reasonRouter } from './routes/reason';
import { DEFAULT_LIMITS, DEFAULT_TENANT_LIMITS } from './ports';
import { documentTenantLimits } from './tenants/limits';

/** Requests whose bodies stream (and enforce their own limits) instead of being read whole. */
export function isStreamingUpload(c: Context): boolean {
  const path = new URL(c.req.url).pathname;
  return (c.req.method === 'POST' && /^\/v1\/files\/?$/.test(path)) || (c.req.method === 'PUT' && path.startsWith('/blobs/'));
}

export const OPENAPI_CONFIG = {
  openapi: '3.1.0',
  info: {
    title: 'Soft-thinking reasoning API',
    version: '0.1.0',
    description: [
      'Reasoning with soft thinking, and SofT-GRPO fine-tuning. Authenticate with `Authorization: Bearer <api key>`.',
      '',
      'Conventions: errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status; every response has',
      '`x-request-id`; every POST honours `Idempotency-Key` (same key + same body: the stored response again, with',
      '`idempotent-replayed: true`; same key + another body: 409); lists are `{object: "list", data, has_more}` with',
      '`after` / `limit`; another tenant\'s ids answer 404.',
      '',
      `Limits (deployment defaults): JSON bodies ${DEFAULT_LIMITS.maxJsonBodyBytes} bytes, uploaded files ${DEFAULT_LIMITS.maxFileBytes} bytes,`,
      `JSONL lines ${DEFAULT_LIMITS.maxLineBytes} bytes, list pages ${DEFAULT_LIMITS.maxListLimit} items; larger bodies answer 413.`,
      '',
      `Per-organization limits (deployment defaults): ${DEFAULT_TENANT_LIMITS.requestsPerMinute} requests per minute on /v1,`,
      `${DEFAULT_TENANT_LIMITS.concurrentSamples} reasoning samples in flight (a /v1/reason or chat request holds its \`n\` until it ends),`,
      `${DEFAULT_TENANT_LIMITS.activeJobs} unfinished fine-tuning jobs. Over a limit the answer is 429 \`rate_limit_exceeded\` with`,
      '`retry-after`; every /v1 answer carries `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and',
      '`x-ratelimit-reset-requests`.',
    ].join('\n'),
  },
  tags: [
    { name: 'Files', description: 'JSONL datasets for fine-tuning' },
    { name: 'Fine-tuning', description: 'SofT-GRPO / GRPO fine-tuning jobs' },
    { name: 'Models', description: 'Base and fine-tuned models' },
    { name: 'Model uploads', description: "Base models of an organization's own, uploaded through signed URLs (docs/MODELS.md)" },
    { name: 'API keys', description: "The organisation's API keys: list, create, revoke" },
    { name: 'Reasoning', description: 'Soft-thinking reasoning with majority voting, and chat completions' },
    { name: 'Worker protocol', description: 'GPU workers only (worker token); see docs/CONTRACTS.md' },
    { name: 'Serving replicas', description: 'softgrpo.serve replicas register and heartbeat (worker token); see docs/WORKER.md' },
  ],
} as const;

export function createApp(deps: Deps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook as never });
  app.use('*', async (c, next) => {
    c.set('deps', deps);
    await next();
  });
  app.use('*', requestId);
  app.onError(onError);
  app.notFound(onNotFound);
  app.use('*', async (c, next) => (isStreamingUpload(c) ? next() : jsonBodyLimit(c, next)));

  const v1 = createRouter();
  // Per-tenant limits (src/tenants/): requests per minute here, samples and jobs in their routes.
  v1.use('*', requireApiKey, tenantRateLimit, idempotency(isStreamingUpload));
  v1.route('/files', filesRouter);
  v1.route('/finetune', finetuneRouter);
  v1.route('/fine_tuning/jobs', finetuneRouter);
  v1.route('/models', modelsRouter);
  v1.route('/model_uploads', modelUploadsRouter);
  v1.route('/reason', reasonRouter);
  v1.route('/chat/completions', chatRouter);
  v1.route('/completions', completionsRouter);
  v1.route('/api_keys', apiKeysRouter);
  documentTenantLimits(v1);
  app.route('/v1', v1);

  const internal = createRouter();
  internal.use('*', requireWorkerToken, idempotency(() => false));
  internal.route('/', internalRouter);
  internal.route('/', internalCheckpointsRouter);
  internal.route('/', internalReplicasRouter);
  app.route('/internal', internal);

  app.route('/blobs', blobsRouter);
  app.route('/', docsRouter);
  app.route('/', dashboardRouter);
  // Answers whatever else is broken; names base models that are configured but missing from the blob store.
  app.get('/healthz', (c) => c.json({ ok: true, ...(deps.missingBaseModels?.length ? { missing_models: deps.missingBaseModels } : {}) }));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'A user API key (`sk-...`), see `npm run create-api-key`.',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'workerToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'The deployment\'s worker token (WORKER_TOKEN); user API keys are refused.',
  });
  app.doc31('/openapi.json', OPENAPI_CONFIG as never);
  return app;
}

export type App = ReturnType<typeof createApp>;

/** The OpenAPI 3.1 document of an app (what /openapi.json serves). */
export function openApiDocument(app: App) {
  return app.getOpenAPI31Document(OPENAPI_CONFIG as never);
}
