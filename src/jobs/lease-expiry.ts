/**
 * The lease sweep, run by a timer on Node (src/entry/node.ts) and by the cron trigger on Workers: the `expire` and
 * `expire_last` transitions of ./transitions.ts for every job whose worker stopped heartbeating. running -> queued
 * and pausing -> paused while attempts are left (the next claim resumes from the last checkpoint), -> failed on the
 * last attempt; a cancelled job's stale lease is dropped. Set-based and atomic: ONE batch holds, per transition, the
 * event insert and the UPDATE under the same guard (status, lease expired, attempts left or not), so each expired
 * job gets its change and exactly one event together; a heartbeat racing the sweep either extends the lease first
 * or finds it gone (409 lease_lost). Also forgets expired idempotency keys.
 */
import { and, eq, isNotNull, lt, sql, type SQL } from 'drizzle-orm';
import type { BatchItem } from 'drizzle-orm/batch';
import { jobs, type JobStatus } from '../db/schema';
import { purgeIdempotencyKeys } from '../middleware/idempotency';
import type { Deps } from '../ports';
import { eventWhere, type NewEvent } from './guarded-writes';
import { TRANSITIONS } from './transitions';

export interface SweepResult {
  requeued: string[];
  paused: string[];
  failed: string[];
}

const lostOnEveryAttempt = sql`json_object('code', 'worker_lost', 'message', 'The worker stopped responding on every attempt (' || ${jobs.attempts} || ' of ' || ${jobs.maxAttempts} || '); the job was not retried further. Create a new job to try again.', 'param', NULL)`;

/** The event of each expiry, by target status. */
const EVENTS: Record<'queued' | 'paused' | 'failed' | 'cancelled', NewEvent> = {
  failed: {
    level: 'error',
    message: sql`'Lease expired on attempt ' || ${jobs.attempts} || ', the last one; job failed.'`,
    data: { status: 'failed' },
  },
  queued: {
    level: 'warn',
    message: sql`'Lease expired on attempt ' || ${jobs.attempts} || '; job re-queued to resume from its last checkpoint.'`,
    data: sql`json_object('status', 'queued', 'attempt', ${jobs.attempts})`,
  },
  paused: { level: 'warn', message: 'Lease expired while pausing; job paused at its last checkpoint.', data: { status: 'paused' } },
  cancelled: {
    level: 'warn',
    message: 'The worker never acknowledged the cancel before its lease expired; lease released.',
    data: { status: 'cancelled' },
  },
};

export async function expireLeases(deps: Deps): Promise<SweepResult> {
  const { db } = deps.database;
  const now = deps.clock.now();
  const expired = and(isNotNull(jobs.leaseExpiresAt), lt(jobs.leaseExpiresAt, now));
  const attemptsLeft = sql`${jobs.attempts} < ${jobs.maxAttempts}`;
  const noneLeft = sql`${jobs.attempts} >= ${jobs.maxAttempts}`;

  const moves: { from: JobStatus; to: JobStatus; where: SQL }[] = [];
  for (const [from, to] of Object.entries(TRANSITIONS.expire_last) as [JobStatus, JobStatus][])
    moves.push({ from, to, where: and(eq(jobs.status, from), expired, noneLeft)! });
  for (const [from, to] of Object.entries(TRANSITIONS.expire) as [JobStatus, JobStatus][])
    moves.push({ from, to, where: and(eq(jobs.status, from), expired, from === 'cancelled' ? undefined : attemptsLeft)! });

  const statements: BatchItem<'sqlite'>[] = [];
  for (const m of moves) {
    const release = { leaseToken: null, leaseExpiresAt: null, workerId: null, updatedAt: now };
    statements.push(
      eventWhere(db, m.where, EVENTS[m.to as keyof typeof EVENTS], now),
      db
        .update(jobs)
        .set(m.to === 'failed' ? { ...release, status: m.to, finishedAt: now, error: lostOnEveryAttempt } : { ...release, status: m.to })
        .where(m.where)
        .returning({ id: jobs.id }),
    );
  }
  const results = (await deps.database.batch(statements as [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]])) as unknown[];
  const out: SweepResult = { requeued: [], paused: [], failed: [] };
  moves.forEach((m, i) => {
    const ids = (results[2 * i + 1] as { id: string }[]).map((r) => r.id);
    if (m.to === 'queued') out.requeued.push(...ids);
    else if (m.to === 'paused') out.paused.push(...ids);
    else if (m.to === 'failed') out.failed.push(...ids);
  });
  await purgeIdempotencyKeys(deps);
  return out;
}
