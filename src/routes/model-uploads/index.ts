/**
 * `/v1/model_uploads`: tenant-owned base models (src/models/tenant-models.ts). POST declares a model folder's files and
 * answers one signed PUT URL per file; the client PUTs each file (the URL is bound to its sha256); POST
 * `/{model}/complete` verifies them and makes the model servable on /v1/reason and fine-tunable on /v1/finetune, for
 * this organization only. Size limits are explicit in the answers (413 model_too_large, 400 model_limit).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { errorResponses } from '../../errors';
import { completeModelUpload, deleteTenantModel, listTenantModels, MODEL_FILE_NAMES, MODEL_ID_RE, startModelUpload } from '../../models/tenant-models';
import type { TenantModelRow } from '../../db/schema';
import { createRouter } from '../../router';
import { bearerSecurity, originOf } from '../common';

export const modelUploadsRouter = createRouter();
const tags = ['Model uploads'];

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex SHA-256');
const DeclaredFile = z.object({
  name: z.enum(MODEL_FILE_NAMES).openapi({ description: 'A model folder file name' }),
  bytes: z.number().int().min(0),
  sha256: Sha256,
});
const CreateBody = z
  .object({
    id: z.string().regex(MODEL_ID_RE, 'letters, digits, ".", "_", "-" (at most 128), starting with a letter or digit').openapi({ example: 'acme-qwen2.5-math-1.5b' }),
    files: z.array(DeclaredFile).min(1).max(64),
  })
  .openapi('ModelUploadCreate');
const ModelUpload = z
  .object({
    id: z.string(),
    object: z.literal('model_upload'),
    status: z.enum(['uploading', 'ready']),
    bytes: z.number().int(),
    files: z.array(DeclaredFile.extend({ name: z.string() })),
    created_at: z.number().int(),
    parameters: z.number().int().nullable(),
  })
  .openapi('ModelUpload');
const ModelUploadStarted = ModelUpload.extend({
  upload_urls: z.array(z.object({ name: z.string(), url: z.string() })),
  expires_at: z.number().int(),
}).openapi('ModelUploadStarted');
const ModelParam = z.object({ model: z.string().openapi({ param: { name: 'model', in: 'path' } }) });

function toObject(row: TenantModelRow): z.infer<typeof ModelUpload> {
  const parameters = Number(row.manifest?.parameters);
  return {
    id: row.id,
    object: 'model_upload',
    status: row.status,
    bytes: row.bytes,
    files: row.files,
    created_at: Math.floor(row.createdAt / 1000),
    parameters: Number.isInteger(parameters) ? parameters : null,
  };
}

modelUploadsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags,
    summary: 'Upload a base model of your own (step 1: declare its files)',
    description:
      'Declares a model folder written by `npm run import-model` (docs/MODELS.md): config.json, tokenizer.json, ' +
      'tokenizer_config.json, model.safetensors, model.onnx (or model.int8.onnx) and manifest.json are required. ' +
      'Answers one signed PUT URL per file, bound to its sha256. Limits: 16 files, 20 GiB per model, 8 models per ' +
      'organization (deployment defaults), and the blob limit per file. The id is unique across organizations.',
    security: bearerSecurity,
    request: { body: { required: true, content: { 'application/json': { schema: CreateBody } } } },
    responses: {
      200: { description: 'The upload, with its signed URLs', content: { 'application/json': { schema: ModelUploadStarted } } },
      ...errorResponses(400, 401, 409, 413),
    },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const deps = c.get('deps');
    const { row, urls, expiresAt } = await startModelUpload(deps, c.get('tenantId'), body.id, body.files, originOf(c.req.url));
    return c.json({ ...toObject(row), upload_urls: urls, expires_at: Math.floor(expiresAt / 1000) }, 200);
  },
);

modelUploadsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/{model}/complete',
    tags,
    summary: 'Upload a base model of your own (step 2: verify the files)',
    description:
      'Checks every declared file is uploaded with its size and sha256, that config.json is a Qwen2 or Llama model ' +
      'and manifest.json a model manifest; the model is then listed on /v1/models and usable on /v1/reason and ' +
      '/v1/finetune by this organization. A 400 names the file otherwise.',
    security: bearerSecurity,
    request: { params: ModelParam },
    responses: {
      200: { description: 'The ready model', content: { 'application/json': { schema: ModelUpload } } },
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const row = await completeModelUpload(c.get('deps'), c.get('tenantId'), c.req.valid('param').model);
    return c.json(toObject(row), 200);
  },
);

modelUploadsRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags,
    summary: "List this organization's model uploads",
    security: bearerSecurity,
    responses: {
      200: {
        description: 'The uploads, oldest first',
        content: { 'application/json': { schema: z.object({ object: z.literal('list'), data: z.array(ModelUpload), has_more: z.boolean() }) } },
      },
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const rows = await listTenantModels(c.get('deps'), c.get('tenantId'));
    return c.json({ object: 'list' as const, data: rows.map(toObject), has_more: false }, 200);
  },
);

modelUploadsRouter.openapi(
  createRoute({
    method: 'delete',
    path: '/{model}',
    tags,
    summary: 'Delete a model upload and its files',
    description: 'Queued jobs on the model then fail when a worker claims them; checkpoints of finished jobs keep their own files.',
    security: bearerSecurity,
    request: { params: ModelParam },
    responses: {
      200: { description: 'Deleted', content: { 'application/json': { schema: z.object({ id: z.string(), object: z.literal('model_upload'), deleted: z.literal(true) }) } } },
      ...errorResponses(401, 404),
    },
  }),
  async (c) => {
    const { model } = c.req.valid('param');
    await deleteTenantModel(c.get('deps'), c.get('tenantId'), model);
    return c.json({ id: model, object: 'model_upload' as const, deleted: true as const }, 200);
  },
);
