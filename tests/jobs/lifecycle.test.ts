/**
 * The job lifecycle module (src/jobs/lifecycle.ts, claim.ts, lease-expiry.ts) against its transition table
 * (src/jobs/transitions.ts), on real SQLite: every legal (action, status) pair lands in the table's status and writes
 * exactly one event (heartbeat's lease extensions none); every illegal pair answers 409 and writes nothing; the row
 * and its event commit together or not at all; concurrent changes of one job never both win.
 */
import { eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpoints, JOB_STATUSES, jobEvents, jobs, tenants, type JobRow, type JobStatus } from '../../src/db/schema';
import { ApiError } from '../../src/errors';
import { claimNextJob } from '../../src/jobs/claim';
import { expireLeases } from '../../src/jobs/lease-expiry';
import {
  ackPause,
  cancelJob,
  failJob,
  finishJob,
  heartbeatJob,
  pauseJob,
  resumeJob,
  transition,
} from '../../src/jobs/lifecycle';
import { JOB_ACTIONS, nextStatus, sourcesOf, TRANSITIONS, type JobAction } from '../../src/jobs/transitions';
import { makeTestApp, type TestApp } from '../helpers/app';

let t: TestApp;
let tenantId: string;
let seq = 0;
beforeEach(async () => {
  t = await makeTestApp();
  tenantId = (await t.newTenant()).tenantId;
});
afterEach(() => t.close());

const TOKEN = 'lease-token-of-the-test';
const db = () => t.deps.database.db;

/** A job put straight into `status` (leased by TOKEN where a worker would hold it), on attempt `attempts`. */
async function jobIn(status: JobStatus, over: Partial<JobRow> = {}): Promise<string> {
  const id = `ftjob-${String(++seq).padStart(26, '0')}`;
  const now = t.clock.now();
  const leased = status === 'running' || status === 'pausing' || status === 'cancelled';
  await db()
    .insert(jobs)
    .values({
      id,
      tenantId,
      model: 'tiny-arith',
      trainingFile: 'file-x',
      methodType: 'soft_grpo',
      hyperparameters: { n_steps: 4 },
      grader: { type: 'math', scope: 'answer' },
      seed: 1,
      status,
      attempts: leased ? 1 : 0,
      maxAttempts: 3,
      leaseToken: leased ? TOKEN : null,
      leaseExpiresAt: leased ? now + 60_000 : null,
      workerId: leased ? 'w1' : null,
      startedAt: leased ? now : null,
      createdAt: now,
      updatedAt: now,
      ...over,
    });
  return id;
}

const row = async (id: string) => (await db().select().from(jobs).where(eq(jobs.id, id)).get())!;
const events = async (id: string) => db().select().from(jobEvents).where(eq(jobEvents.jobId, id)).orderBy(jobEvents.id).all();

/** Runs `action` on job `id` through the module, the way its caller (route or sweep) does. */
async function act(action: JobAction, id: string): Promise<void> {
  const deps = t.deps;
  switch (action) {
    case 'create':
      throw new Error('create makes a new job; covered by the create tests');
    case 'claim': {
      const claimed = await claimNextJob(deps.database, { now: t.clock.now(), leaseToken: 'fresh-token', leaseMs: 60_000, workerId: 'w2' });
      if (claimed?.id !== id) throw new ApiError(409, 'nothing claimed', { code: 'invalid_job_status' });
      return;
    }
    case 'heartbeat':
    case 'stop':
      await heartbeatJob(deps, id, TOKEN, 1);
      return;
    case 'pause':
      await pauseJob(deps, tenantId, id);
      return;
    case 'resume':
      await resumeJob(deps, tenantId, id);
      return;
    case 'cancel':
      await cancelJob(deps, tenantId, id);
      return;
    case 'ack_pause':
      await ackPause(deps, id, TOKEN);
      return;
    case 'finish':
      await db()
        .insert(checkpoints)
        .values({ id: `ftckpt-${id}`, jobId: id, tenantId, step: 4, metrics: {}, files: [], blobPrefix: 'x/', createdAt: t.clock.now() });
      await finishJob(deps, id, TOKEN);
      return;
    case 'fail':
      await failJob(deps, id, TOKEN, { code: 'boom', message: 'it broke', param: null }, false);
      return;
    case 'retry':
      await failJob(deps, id, TOKEN, { code: 'oom', message: 'out of memory', param: null }, true);
      return;
    case 'expire':
    case 'expire_last': {
      const r = await row(id);
      const swept = await expireLeases(deps);
      const touched = [...swept.requeued, ...swept.paused, ...swept.failed];
      const released = r.status === 'cancelled' && (await row(id)).leaseToken === null;
      if (!touched.includes(id) && !released) throw new ApiError(409, 'the sweep left it alone', { code: 'invalid_job_status' });
      return;
    }
  }
}

/** The job a test of `action` starts from: for the sweep, its lease has run out (on the last attempt for expire_last). */
const setupFor = (action: JobAction, from: JobStatus) =>
  jobIn(
    from,
    action === 'expire' || action === 'expire_last'
      ? { leaseToken: TOKEN, leaseExpiresAt: t.clock.now() - 1, attempts: action === 'expire_last' ? 3 : 1 }
      : {},
  );

const EVENTLESS = (action: JobAction) => action === 'heartbeat';
const legal = JOB_ACTIONS.filter((a) => a !== 'create').flatMap((action) =>
  sourcesOf(action).map((from) => ({ action, from, to: nextStatus(action, from)! })),
);
// heartbeat and stop are one call (the worker's heartbeat), expire and expire_last another (the sweep): such a call
// is illegal only where none of its actions applies.
const CALLS: JobAction[][] = [['heartbeat', 'stop'], ['expire', 'expire_last']];
const sameCall = (a: JobAction): JobAction[] => CALLS.find((c) => c.includes(a)) ?? [a];
const illegal = JOB_ACTIONS.filter((a) => a !== 'create' && a !== 'stop').flatMap((action) =>
  JOB_STATUSES.filter((s) => sameCall(action).every((a) => nextStatus(a, s) === null)).map((from) => ({ action, from })),
);

describe('the transition table', () => {
  it('covers_every_status_and_leaves_finished_jobs_finished', () => {
    for (const s of ['succeeded', 'failed'] as const) expect(JOB_ACTIONS.filter((a) => nextStatus(a, s))).toEqual([]);
    // a cancelled job only sheds its lease (the worker's last heartbeat, or the sweep)
    expect(JOB_ACTIONS.filter((a) => nextStatus(a, 'cancelled'))).toEqual(['stop', 'expire']);
    for (const s of JOB_STATUSES.filter((s) => !['succeeded', 'failed', 'cancelled'].includes(s)))
      expect(nextStatus('cancel', s)).toBe('cancelled');
    expect(legal.length).toBe(Object.values(TRANSITIONS).reduce((n, m) => n + Object.keys(m).length, 0) - 1);
  });

  it.each(legal)('$action moves a $from job to $to with exactly one event', async ({ action, from, to }) => {
    const id = await setupFor(action, from);
    const before = (await events(id)).length;
    await act(action, id);
    expect((await row(id)).status).toBe(to);
    const written = (await events(id)).slice(before);
    expect(written.length).toBe(EVENTLESS(action) ? 0 : 1);
    if (!EVENTLESS(action)) expect(written[0].type).toBe('status');
  });

  it.each(illegal)('$action on a $from job is a 409 that writes nothing', async ({ action, from }) => {
    const id = await setupFor(action, from);
    const before = await row(id);
    const err = await act(action, id).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(409);
    expect(['invalid_job_status', 'lease_lost']).toContain((err as ApiError).opts.code);
    expect(await row(id)).toEqual(before);
    expect(await events(id)).toEqual([]);
  });
});

describe('atomic batches', () => {
  it('writes_neither_the_row_nor_the_event_when_a_statement_of_the_batch_fails', async () => {
    const id = await jobIn('queued');
    const duplicateTenant = () => [t.deps.database.db.insert(tenants).values({ id: tenantId, name: 'again', createdAt: 0 })];
    await expect(
      transition(t.deps, id, {
        action: 'cancel',
        scope: eq(jobs.tenantId, tenantId),
        event: () => ({ message: 'cancelled' }),
        also: duplicateTenant,
      }),
    ).rejects.toThrow();
    expect((await row(id)).status).toBe('queued');
    expect(await events(id)).toEqual([]);
  });

  it('lets_one_of_two_concurrent_changes_win_and_answers_the_other_with_409', async () => {
    const id = await jobIn('running');
    const results = await Promise.allSettled([cancelJob(t.deps, tenantId, id), pauseJob(t.deps, tenantId, id), cancelJob(t.deps, tenantId, id)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const statuses = won.map((r) => (r as PromiseFulfilledResult<JobRow>).value.status);
    // cancel may follow a pause (pausing -> cancelled) but nothing follows a cancel
    expect(statuses.filter((s) => s === 'cancelled').length).toBe(1);
    for (const r of results.filter((r) => r.status === 'rejected')) expect(((r as PromiseRejectedResult).reason as ApiError).status).toBe(409);
    expect((await events(id)).length).toBe(won.length);
  });

  it('claims_and_writes_the_claim_event_and_the_round_robin_stamp_in_one_batch', async () => {
    const id = await jobIn('queued');
    const job = await claimNextJob(t.deps.database, { now: t.clock.now(), leaseToken: 'tok-claim', leaseMs: 1000, workerId: 'w9' });
    expect(job).toMatchObject({ id, status: 'running', attempts: 1, leaseToken: 'tok-claim' });
    expect((await events(id)).map((e) => [e.message, e.data])).toEqual([
      ['Worker w9 started attempt 1.', { status: 'running', attempt: 1, resume_step: null }],
    ]);
    const stamp = await db().select({ seq: tenants.lastClaimSeq }).from(tenants).where(eq(tenants.id, tenantId)).get();
    expect(stamp?.seq).toBe(1);
    expect(await claimNextJob(t.deps.database, { now: t.clock.now(), leaseToken: 'tok-2', leaseMs: 1000, workerId: 'w9' })).toBeNull();
  });
});

describe('lease expiry through the module', () => {
  it('requeues_parks_fails_and_releases_expired_leases_with_one_event_each', async () => {
    const past = { leaseExpiresAt: t.clock.now() - 1 };
    const requeued = await jobIn('running', past);
    const parked = await jobIn('pausing', past);
    const lost = await jobIn('running', { ...past, attempts: 3 });
    const cancelled = await jobIn('cancelled', past);
    const alive = await jobIn('running');
    const swept = await expireLeases(t.deps);
    expect(swept).toEqual({ requeued: [requeued], paused: [parked], failed: [lost] });
    expect((await row(requeued)).status).toBe('queued');
    expect((await row(parked)).status).toBe('paused');
    expect(await row(lost)).toMatchObject({ status: 'failed', error: { code: 'worker_lost' } });
    expect(await row(cancelled)).toMatchObject({ status: 'cancelled', leaseToken: null });
    expect(await row(alive)).toMatchObject({ status: 'running', leaseToken: TOKEN });
    for (const id of [requeued, parked, lost, cancelled]) expect((await events(id)).length).toBe(1);
    expect((await events(requeued))[0]).toMatchObject({
      message: 'Lease expired on attempt 1; job re-queued to resume from its last checkpoint.',
      data: { status: 'queued', attempt: 1 },
    });
    expect(await events(alive)).toEqual([]);
    // a second sweep finds nothing left to change
    expect(await expireLeases(t.deps)).toEqual({ requeued: [], paused: [], failed: [] });
    expect((await db().select({ n: sql<number>`count(*)` }).from(jobEvents).get())?.n).toBe(4);
  });
});
