/**
 * The lease sweep, run by a timer on Node (src/entry/node.ts) and by the cron trigger on Workers: jobs whose
 * worker stopped heartbeating go back to the queue (running -> queued, pausing -> paused) so the next claim
 * resumes from the last checkpoint; on the last attempt they fail instead. Each change is one conditional
 * UPDATE ... RETURNING, so a heartbeat racing the sweep either extends the lease first or finds it gone (409).
 * Also forgets expired idempotency keys.
 */
import { and, eq, inArray, isNotNull, lt, sql } from 'drizzle-orm';
import { jobs } from '../db/schema';
import { purgeIdempotencyKeys } from '../middleware/idempotency';
import type { Deps } from '../ports';
import { addJobEvents } from './store';

export interface SweepResult {
  requeued: string[];
  paused: string[];
  failed: string[];
}

export async function expireLeases(deps: Deps): Promise<SweepResult> {
  const { db } = deps.database;
  const now = deps.clock.now();
  const expired = and(isNotNull(jobs.leaseExpiresAt), lt(jobs.leaseExpiresAt, now));
  const release = { leaseToken: null, leaseExpiresAt: null, workerId: null, updatedAt: now };

  const failed = await db
    .update(jobs)
    .set({
      ...release,
      status: 'failed',
      finishedAt: now,
      error: sql`json_object('code', 'worker_lost', 'message', 'The worker stopped responding on every attempt (' || ${jobs.attempts} || ' of ' || ${jobs.maxAttempts} || '); the job was not retried further. Create a new job to try again.', 'param', NULL)`,
    })
    .where(and(inArray(jobs.status, ['running', 'pausing']), expired, sql`${jobs.attempts} >= ${jobs.maxAttempts}`))
    .returning({ id: jobs.id, attempts: jobs.attempts });
  const requeued = await db
    .update(jobs)
    .set({ ...release, status: 'queued' })
    .where(and(eq(jobs.status, 'running'), expired))
    .returning({ id: jobs.id, attempts: jobs.attempts });
  const paused = await db
    .update(jobs)
    .set({ ...release, status: 'paused' })
    .where(and(eq(jobs.status, 'pausing'), expired))
    .returning({ id: jobs.id, attempts: jobs.attempts });
  // A cancelled job whose worker never came back for its "cancel" answer: drop the stale lease.
  await db.update(jobs).set(release).where(and(eq(jobs.status, 'cancelled'), expired));

  for (const j of failed)
    await addJobEvents(db, j.id, now, [
      { level: 'error', type: 'status', message: `Lease expired on attempt ${j.attempts}, the last one; job failed.`, data: { status: 'failed' } },
    ]);
  for (const j of requeued)
    await addJobEvents(db, j.id, now, [
      { level: 'warn', type: 'status', message: `Lease expired on attempt ${j.attempts}; job re-queued to resume from its last checkpoint.`, data: { status: 'queued', attempt: j.attempts } },
    ]);
  for (const j of paused)
    await addJobEvents(db, j.id, now, [
      { level: 'warn', type: 'status', message: 'Lease expired while pausing; job paused at its last checkpoint.', data: { status: 'paused' } },
    ]);
  await purgeIdempotencyKeys(deps);
  return { requeued: requeued.map((j) => j.id), paused: paused.map((j) => j.id), failed: failed.map((j) => j.id) };
}
