/** Which live replica gets a request (src/replicas/routing.ts): the holder of the model with a free slot, else the least loaded. */
import { describe, expect, it } from 'vitest';
import { pickReplica } from '../../src/replicas/routing';

const r = (id: string, load: number, capacity: number, models: string[] = []) => ({ id, load, capacity, models });

describe('pickReplica', () => {
  it('prefers_a_replica_that_holds_the_model_and_has_a_free_slot', () => {
    expect(pickReplica([r('a', 0, 1), r('b', 1, 2, ['m@1'])], 'm@1')?.id).toBe('b');
  });

  it('takes_the_least_loaded_when_the_holders_are_full_or_none_holds_it', () => {
    expect(pickReplica([r('a', 1, 4), r('b', 1, 1, ['m@1'])], 'm@1')?.id).toBe('a');
    expect(pickReplica([r('a', 3, 4), r('b', 1, 4)], 'm@1')?.id).toBe('b');
  });

  it('counts_the_requests_sent_since_the_last_heartbeat', () => {
    expect(pickReplica([r('a', 0, 1), r('b', 0, 1)], 'm@1', (id) => (id === 'a' ? 2 : 0))?.id).toBe('b');
  });

  it('answers_null_without_replicas', () => {
    expect(pickReplica([], 'm@1')).toBeNull();
  });
});
