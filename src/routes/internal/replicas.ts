/**
 * Serving replicas register themselves (worker token): `python -m softgrpo.serve --api <url>` calls register, then
 * heartbeat every `heartbeat_seconds` with its load and the models it holds, and deregister on shutdown. The API
 * routes /v1/reason and chat to live replicas (src/replicas/). A heartbeat answered 404 means the replica was
 * dropped (its heartbeats stopped for longer than `ttl_seconds`): it registers again.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError, errorResponses } from '../../errors';
import { REPLICA_HEARTBEAT_SECONDS, REPLICA_TTL_SECONDS, heartbeatReplica, liveReplicas, registerReplica, removeReplica } from '../../replicas/store';
import { createRouter } from '../../router';
import { originOf, seconds, workerSecurity } from '../common';

export const internalReplicasRouter = createRouter();
const tags = ['Serving replicas'];
const json = <T>(schema: T) => ({ 'application/json': { schema } });

const ReplicaState = {
  load: z.number().int().min(0).max(1_000_000).openapi({ description: 'Generations in flight or queued on the replica.' }),
  models: z
    .array(z.string().min(1).max(512))
    .max(256)
    .openapi({ description: 'Model keys (and ids of models given at start-up) the replica holds in memory.' }),
};

const RegisterReplicaBody = z
  .object({
    url: z
      .string()
      .max(2048)
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'must be an http(s) URL')
      .openapi({ description: 'Where the API reaches this replica (POST <url>/v1/generate).' }),
    capacity: z.number().int().min(1).max(10_000).default(1).openapi({ description: 'Generations the replica runs at once.' }),
    ...ReplicaState,
  })
  .strict();

const ReplicaToken = z.string().min(1).max(256).openapi({ description: 'The token the registration returned.' });
const HeartbeatReplicaBody = z.object({ token: ReplicaToken, ...ReplicaState }).strict();
const DeregisterReplicaBody = z.object({ token: ReplicaToken }).strict();
const ReplicaIdParam = z.object({ replica_id: z.string().min(1).max(128).openapi({ param: { name: 'replica_id', in: 'path' } }) });

const Registered = z
  .object({
    id: z.string(),
    token: z.string().openapi({ description: 'Bearer token the API sends with each generation; also authenticates heartbeats.' }),
    heartbeat_seconds: z.number().int(),
    ttl_seconds: z.number().int().openapi({ description: 'A replica silent for longer is dropped.' }),
    expires_at: z.number().int(),
  })
  .openapi('ServeReplicaRegistration');

const ReplicaObject = z
  .object({
    id: z.string(),
    url: z.string(),
    load: z.number().int(),
    capacity: z.number().int(),
    models: z.array(z.string()),
    last_seen_at: z.number().int(),
    expires_at: z.number().int(),
  })
  .openapi('ServeReplica');

const unknownReplica = (id: string) =>
  new ApiError(404, `No live replica '${id}' with this token; register again.`, { code: 'replica_unknown', param: 'replica_id' });

internalReplicasRouter.openapi(
  createRoute({
    method: 'post',
    path: '/replicas',
    tags,
    summary: 'Register a serving replica',
    security: workerSecurity,
    request: { body: { required: true, content: json(RegisterReplicaBody) } },
    responses: { 201: { description: 'Registered', content: json(Registered) }, ...errorResponses(400, 401, 403, 415) },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const row = await registerReplica(c.get('deps'), { ...body, apiOrigin: originOf(c.req.url) });
    return c.json(
      { id: row.id, token: row.token, heartbeat_seconds: REPLICA_HEARTBEAT_SECONDS, ttl_seconds: REPLICA_TTL_SECONDS, expires_at: seconds(row.expiresAt) },
      201,
    );
  },
);

internalReplicasRouter.openapi(
  createRoute({
    method: 'post',
    path: '/replicas/{replica_id}/heartbeat',
    tags,
    summary: "A replica's load and held models; keeps it live",
    security: workerSecurity,
    request: { params: ReplicaIdParam, body: { required: true, content: json(HeartbeatReplicaBody) } },
    responses: {
      200: { description: 'Still live until expires_at', content: json(z.object({ expires_at: z.number().int() })) },
      ...errorResponses(400, 401, 403, 404, 415),
    },
  }),
  async (c) => {
    const { replica_id } = c.req.valid('param');
    const { token, ...state } = c.req.valid('json');
    const row = await heartbeatReplica(c.get('deps'), replica_id, token, state);
    if (!row) throw unknownReplica(replica_id);
    return c.json({ expires_at: seconds(row.expiresAt) }, 200);
  },
);

internalReplicasRouter.openapi(
  createRoute({
    method: 'post',
    path: '/replicas/{replica_id}/deregister',
    tags,
    summary: 'A replica leaving (shutdown): no more requests go to it',
    security: workerSecurity,
    request: { params: ReplicaIdParam, body: { required: true, content: json(DeregisterReplicaBody) } },
    responses: { 204: { description: 'Removed' }, ...errorResponses(400, 401, 403, 404, 415) },
  }),
  async (c) => {
    const { replica_id } = c.req.valid('param');
    if (!(await removeReplica(c.get('deps'), replica_id, c.req.valid('json').token))) throw unknownReplica(replica_id);
    return c.body(null, 204);
  },
);

internalReplicasRouter.openapi(
  createRoute({
    method: 'get',
    path: '/replicas',
    tags,
    summary: 'The live serving replicas',
    security: workerSecurity,
    responses: {
      200: { description: 'Live replicas', content: json(z.object({ object: z.literal('list'), data: z.array(ReplicaObject) })) },
      ...errorResponses(401, 403),
    },
  }),
  async (c) => {
    const rows = await liveReplicas(c.get('deps'));
    const data = rows.map((r) => ({
      id: r.id,
      url: r.url,
      load: r.load,
      capacity: r.capacity,
      models: r.models,
      last_seen_at: seconds(r.lastSeenAt),
      expires_at: seconds(r.expiresAt),
    }));
    return c.json({ object: 'list' as const, data }, 200);
  },
);
