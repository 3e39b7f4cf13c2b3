/**
 * Which live replica serves a request: one that already holds the model and has a free slot, least loaded first;
 * else the least loaded of all (it loads the model, evicting its least recently used one if memory is short).
 * Load is the replica's last heartbeat plus the requests this isolate sent it since (heartbeats lag by seconds).
 */
import type { ServeReplicaRow } from '../db/schema';

export type ReplicaChoice = Pick<ServeReplicaRow, 'id' | 'load' | 'capacity' | 'models'>;

export function pickReplica<R extends ReplicaChoice>(replicas: R[], key: string, sentSince: (id: string) => number = () => 0): R | null {
  if (replicas.length === 0) return null;
  const load = (r: R) => (r.load + sentSince(r.id)) / Math.max(1, r.capacity);
  const leastLoaded = (rs: R[]) => rs.reduce((best, r) => (load(r) < load(best) ? r : best));
  const holding = replicas.filter((r) => r.models.includes(key) && r.load + sentSince(r.id) < r.capacity);
  return leastLoaded(holding.length ? holding : replicas);
}
