/**
 * What a fine-tuning job is: its statuses (src/db/schema.ts JOB_STATUSES) and, here, every change between them as
 * data. Each action lists the statuses it may start from and where each one leads; any other starting status is
 * illegal (409 `invalid_job_status`, or `lease_lost` for a worker whose job moved on). src/jobs/lifecycle.ts carries
 * them out: every entry is one atomic batch that writes the job row and exactly one event, except `heartbeat`'s
 * self-loops, which only extend the lease.
 *
 *   create       validating_files -> queued       the files are checked while the request waits, so a created job
 *                                                 starts queued; both steps are in its first events
 *   claim        queued -> running                a worker takes it (fair pick, src/jobs/claim.ts); attempts + 1
 *   heartbeat    running -> running, pausing -> pausing   lease extended, progress recorded; no event
 *   stop         cancelled -> cancelled           the worker's heartbeat learns of the cancel; lease released
 *   pause        queued -> paused, running -> pausing     a user's pause; a running job waits for its worker
 *   ack_pause    pausing -> paused                the worker checkpointed; lease released, its attempt given back
 *   resume       paused -> queued, pausing -> running     a user's resume (pausing: the pause is withdrawn)
 *   finish       running | pausing -> succeeded   the worker registered its final checkpoint
 *   fail         running | pausing -> failed      the worker's error, or the job's files or model are gone
 *   retry        running -> queued, pausing -> paused     a retryable failure while attempts are left
 *   expire       running -> queued, pausing -> paused     the lease ran out while attempts are left
 *   expire_last  running | pausing -> failed      the lease ran out on the last attempt
 *   expire       cancelled -> cancelled           the lease of a cancelled job ran out unacknowledged; released
 *   cancel       any unfinished -> cancelled      a user's cancel; a running worker learns it from its heartbeat
 */
import { TERMINAL_STATUSES, type JobStatus } from '../db/schema';

export const JOB_ACTIONS = [
  'create',
  'claim',
  'heartbeat',
  'stop',
  'pause',
  'ack_pause',
  'resume',
  'finish',
  'fail',
  'retry',
  'expire',
  'expire_last',
  'cancel',
] as const;
export type JobAction = (typeof JOB_ACTIONS)[number];

type Moves = Readonly<Partial<Record<JobStatus, JobStatus>>>;

export const TRANSITIONS: Readonly<Record<JobAction, Moves>> = {
  create: { validating_files: 'queued' },
  claim: { queued: 'running' },
  heartbeat: { running: 'running', pausing: 'pausing' },
  stop: { cancelled: 'cancelled' },
  pause: { queued: 'paused', running: 'pausing' },
  ack_pause: { pausing: 'paused' },
  resume: { paused: 'queued', pausing: 'running' },
  finish: { running: 'succeeded', pausing: 'succeeded' },
  fail: { running: 'failed', pausing: 'failed' },
  retry: { running: 'queued', pausing: 'paused' },
  expire: { running: 'queued', pausing: 'paused', cancelled: 'cancelled' },
  expire_last: { running: 'failed', pausing: 'failed' },
  cancel: { validating_files: 'cancelled', queued: 'cancelled', running: 'cancelled', pausing: 'cancelled', paused: 'cancelled' },
};

/** Where `action` takes a job in status `from`, or null when the action is illegal from there. */
export function nextStatus(action: JobAction, from: JobStatus): JobStatus | null {
  return TRANSITIONS[action][from] ?? null;
}

/** The statuses `action` may start from. */
export const sourcesOf = (action: JobAction) => Object.keys(TRANSITIONS[action]) as JobStatus[];

/** Statuses in which a worker holds (or held) the job's lease and may still report on it. */
export const LEASED_STATUSES: readonly JobStatus[] = ['running', 'pausing'];

export const isTerminal = (s: JobStatus) => TERMINAL_STATUSES.includes(s);

/** The verb of the 409 message ("Cannot <verb> a job whose status is 'x'"). */
export const ACTION_VERBS: Readonly<Record<JobAction, string>> = {
  create: 'create',
  claim: 'claim',
  heartbeat: 'heartbeat',
  stop: 'stop',
  pause: 'pause',
  ack_pause: 'pause',
  resume: 'resume',
  finish: 'finish',
  fail: 'fail',
  retry: 'fail',
  expire: 'expire the lease of',
  expire_last: 'expire the lease of',
  cancel: 'cancel',
};
