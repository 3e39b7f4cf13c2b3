/**
 * Serving replicas: gpu-worker `serve` processes that register themselves with the API (worker token), then
 * heartbeat their load and the models they hold. What a replica *is* lives here; the /internal routes
 * (src/routes/internal/replicas.ts), the engine registry (./replica-engines.ts) and the sweep all go through it.
 *
 * A replica is live while its last heartbeat is younger than REPLICA_TTL_SECONDS; a dead one receives no requests
 * and its row is deleted by the next registration or sweep. Each registration gets a new id and a new token: the
 * bearer token the API sends with every generation, so a replica answers only the API it registered with.
 */
import { and, eq, gt, lte } from 'drizzle-orm';
import { serveReplicas, type ServeReplicaRow } from '../db/schema';
import type { Deps } from '../ports';

/** How often a replica heartbeats, and how long after its last heartbeat it still counts as live. */
export const REPLICA_HEARTBEAT_SECONDS = 5;
export const REPLICA_TTL_SECONDS = 20;

export interface ReplicaState {
  /** Generations in flight (running or queued) on the replica. */
  load: number;
  /** Model keys held in memory (./model-key.ts). */
  models: string[];
}

export interface Registration extends ReplicaState {
  url: string;
  capacity: number;
  /** The origin the replica reached the API at: file URLs signed for it point there. */
  apiOrigin: string;
}

export async function registerReplica(deps: Deps, reg: Registration): Promise<ServeReplicaRow> {
  const now = deps.clock.now();
  await sweepReplicas(deps);
  const [row] = await deps.database.db
    .insert(serveReplicas)
    .values({
      id: deps.ids.next('replica'),
      url: reg.url,
      token: `rt-${deps.ids.secret(32)}`,
      apiOrigin: reg.apiOrigin,
      load: reg.load,
      capacity: reg.capacity,
      models: reg.models,
      lastSeenAt: now,
      expiresAt: now + REPLICA_TTL_SECONDS * 1000,
      createdAt: now,
    })
    .returning();
  return row;
}

/** Records a heartbeat; null when the replica is unknown, dead or the token is wrong (it must register again). */
export async function heartbeatReplica(deps: Deps, id: string, token: string, state: ReplicaState): Promise<ServeReplicaRow | null> {
  const now = deps.clock.now();
  const [row] = await deps.database.db
    .update(serveReplicas)
    .set({ load: state.load, models: state.models, lastSeenAt: now, expiresAt: now + REPLICA_TTL_SECONDS * 1000 })
    .where(and(eq(serveReplicas.id, id), eq(serveReplicas.token, token), gt(serveReplicas.expiresAt, now)))
    .returning();
  return row ?? null;
}

/** A replica leaving on purpose (shutdown); true when it was registered. */
export async function removeReplica(deps: Deps, id: string, token: string): Promise<boolean> {
  const rows = await deps.database.db
    .delete(serveReplicas)
    .where(and(eq(serveReplicas.id, id), eq(serveReplicas.token, token)))
    .returning({ id: serveReplicas.id });
  return rows.length > 0;
}

export async function liveReplicas(deps: Deps): Promise<ServeReplicaRow[]> {
  return deps.database.db.select().from(serveReplicas).where(gt(serveReplicas.expiresAt, deps.clock.now()));
}

/** Deletes replicas whose heartbeat stopped; returns their ids. */
export async function sweepReplicas(deps: Deps): Promise<string[]> {
  const rows = await deps.database.db
    .delete(serveReplicas)
    .where(lte(serveReplicas.expiresAt, deps.clock.now()))
    .returning({ id: serveReplicas.id });
  return rows.map((r) => r.id);
}
