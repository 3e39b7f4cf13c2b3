/**
 * `/v1/api_keys`: a tenant manages its own API keys. List (hashes never leave the database: only the id, name and
 * the first characters), create (the key is in this one response and nowhere else), revoke (effective from the
 * key's next request, also for the key that made the call). Operators manage every tenant's keys with
 * `npm run api-keys` (scripts/api-keys.ts).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { errorResponses, notFound } from '../../errors';
import { createRouter } from '../../router';
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyRow } from '../../tenants/api-keys';
import { bearerSecurity, IdempotencyHeaders, seconds, secondsOrNull } from '../common';

export const apiKeysRouter = createRouter();
const tags = ['API keys'];
const json = <T>(schema: T) => ({ 'application/json': { schema } });

const ApiKeyObject = z
  .object({
    id: z.string().openapi({ example: 'key-01jd0s2x8v9k7m3n4p5q6r7s8t' }),
    object: z.literal('api_key'),
    name: z.string(),
    prefix: z.string().openapi({ description: 'The first characters of the key, to tell keys apart.', example: 'sk-AbC12' }),
    created_at: z.number().int(),
    revoked_at: z.number().int().nullable(),
  })
  .openapi('ApiKey');
const CreatedApiKey = ApiKeyObject.extend({
  key: z.string().openapi({ description: 'The key itself. Shown only in this response; store it now.' }),
}).openapi('CreatedApiKey');
const ApiKeyList = z.object({ object: z.literal('list'), data: z.array(ApiKeyObject) }).openapi('ApiKeyList');
const CreateApiKeyBody = z
  .object({ name: z.string().min(1).max(128).default('default').openapi({ description: 'A label for the key (1-128 characters).' }) })
  .strict()
  .openapi('CreateApiKeyRequest');
const KeyIdParam = z.object({ key_id: z.string().max(128).openapi({ param: { name: 'key_id', in: 'path' } }) });

const toApiKeyObject = (row: ApiKeyRow): z.infer<typeof ApiKeyObject> => ({
  id: row.id,
  object: 'api_key',
  name: row.name,
  prefix: row.prefix,
  created_at: seconds(row.createdAt),
  revoked_at: secondsOrNull(row.revokedAt),
});

apiKeysRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags,
    summary: "List the organisation's API keys",
    description: 'Newest first, revoked keys included (with `revoked_at`). The keys themselves are never shown again.',
    security: bearerSecurity,
    responses: { 200: { description: 'API keys', content: json(ApiKeyList) }, ...errorResponses(401) },
  }),
  async (c) => {
    const rows = await listApiKeys(c.get('deps').database.db, c.get('tenantId'));
    return c.json({ object: 'list' as const, data: rows.map(toApiKeyObject) }, 200);
  },
);

apiKeysRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags,
    summary: 'Create an API key',
    description: 'A new key for the caller\'s organisation. The response is the only place the key appears.',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, body: { required: false, content: json(CreateApiKeyBody) } },
    responses: { 200: { description: 'The new key', content: json(CreatedApiKey) }, ...errorResponses(400, 401, 409, 415) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const body = CreateApiKeyBody.parse((c.req.valid('json') as unknown) ?? {});
    const { row, key } = await createApiKey(deps.database.db, deps.ids, deps.clock.now(), c.get('tenantId'), body.name);
    return c.json({ ...toApiKeyObject(row), key }, 200);
  },
);

apiKeysRouter.openapi(
  createRoute({
    method: 'post',
    path: '/{key_id}/revoke',
    tags,
    summary: 'Revoke an API key',
    description:
      'The key is refused (401 invalid_api_key) from its next request on, including when it is the key making this ' +
      'call. Revoking a revoked key is a no-op that returns it unchanged.',
    security: bearerSecurity,
    request: { headers: IdempotencyHeaders, params: KeyIdParam },
    responses: { 200: { description: 'The revoked key', content: json(ApiKeyObject) }, ...errorResponses(401, 404, 409) },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { key_id } = c.req.valid('param');
    const row = await revokeApiKey(deps.database.db, c.get('tenantId'), key_id, deps.clock.now());
    if (!row) throw notFound('API key', key_id, 'key_id');
    return c.json(toApiKeyObject(row), 200);
  },
);
