/** `/v1/models`: base models plus the tenant's fine-tuned models and checkpoints; signed URLs for their files. */
import { createRoute, z } from '@hono/zod-openapi';
import { errorResponses, notFound } from '../../errors';
import { createRouter } from '../../router';
import { bearerSecurity, originOf, seconds } from '../common';
import { listModels, resolveModel, type ResolvedModel } from '../../models/resolve';

export const modelsRouter = createRouter();
const tags = ['Models'];

const ModelObject = z
  .object({
    id: z.string().openapi({ example: 'ft:tiny-arith:my-run:ftjob-01jd0s2x8v9k7m3n4p5q6r7s8t' }),
    object: z.literal('model'),
    created: z.number().int(),
    owned_by: z.string(),
    kind: z.enum(['base', 'fine-tuned', 'checkpoint']),
    root: z.string().openapi({ description: 'The base model at the root.' }),
    job_id: z.string().nullable(),
    step: z.number().int().nullable(),
  })
  .openapi('Model');
const ModelList = z.object({ object: z.literal('list'), data: z.array(ModelObject) }).openapi('ModelList');
const ModelFiles = z
  .object({
    object: z.literal('list'),
    model: z.string(),
    expires_at: z.number().int(),
    data: z.array(z.object({ name: z.string(), bytes: z.number().int(), sha256: z.string(), url: z.string() })),
  })
  .openapi('ModelFiles');
const ModelParam = z.object({ model: z.string().max(256).openapi({ param: { name: 'model', in: 'path' } }) });

const toModelObject = (m: ResolvedModel): z.infer<typeof ModelObject> => ({
  id: m.id,
  object: 'model',
  created: m.created,
  owned_by: m.ownedBy,
  kind: m.kind,
  root: m.base,
  job_id: m.jobId,
  step: m.step,
});

modelsRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags,
    summary: 'List models',
    security: bearerSecurity,
    responses: { 200: { description: 'Models', content: { 'application/json': { schema: ModelList } } }, ...errorResponses(401) },
  }),
  async (c) => {
    const models = await listModels(c.get('deps'), c.get('tenantId'));
    return c.json({ object: 'list' as const, data: models.map(toModelObject) }, 200);
  },
);

modelsRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{model}',
    tags,
    summary: 'Retrieve a model',
    security: bearerSecurity,
    request: { params: ModelParam },
    responses: { 200: { description: 'The model', content: { 'application/json': { schema: ModelObject } } }, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { model } = c.req.valid('param');
    const m = await resolveModel(c.get('deps'), c.get('tenantId'), model);
    if (!m) throw notFound('model', model, 'model');
    return c.json(toModelObject(m), 200);
  },
);

modelsRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{model}/files',
    tags,
    summary: 'Signed download URLs of the model folder\'s files',
    description: 'config.json, tokenizer files, model.safetensors, model.onnx, manifest.json, ... (see docs/CONTRACTS.md "Model folder").',
    security: bearerSecurity,
    request: { params: ModelParam },
    responses: { 200: { description: 'Files with URLs', content: { 'application/json': { schema: ModelFiles } } }, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { model } = c.req.valid('param');
    const m = await resolveModel(deps, c.get('tenantId'), model);
    if (!m) throw notFound('model', model, 'model');
    const expiresAt = deps.clock.now() + deps.config.signedUrlSeconds * 1000;
    const origin = originOf(c.req.url);
    const data = await Promise.all(
      m.files.map(async ({ key, ...f }) => ({ ...f, url: await deps.blobUrls.sign({ key, method: 'GET', expiresAt, origin }) })),
    );
    return c.json({ object: 'list' as const, model: m.id, expires_at: seconds(expiresAt), data }, 200);
  },
);
