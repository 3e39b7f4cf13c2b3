/**
 * A succeeded job's result file, as OpenAI writes one: a CSV of its step metrics (purpose `fine-tune-results`),
 * owned by the job's tenant, listed and downloaded through /v1/files like any file. One row per training step, from
 * the worker's `metrics` events (`step` first, then each numeric metric in name order) and its `eval` events
 * (columns `eval_<name>` on the step they ran at); a value a step lacks is empty.
 */
import { and, asc, eq, inArray, type SQL } from 'drizzle-orm';
import { files, jobEvents, jobs, type JobRow } from '../db/schema';
import type { Deps } from '../ports';
import { insertFromJobs } from './guarded-writes';

/** One CSV field: numbers as JavaScript prints them, anything else empty. */
const field = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : '');

/** The CSV text of a job's metrics and eval events (data objects in event order). */
export function stepMetricsCsv(events: { type: string; data: Record<string, unknown> | null }[]): { csv: string; rows: number } {
  const steps = new Map<number, Record<string, unknown>>();
  const columns = new Set<string>();
  for (const e of events) {
    const step = e.data?.step;
    if (typeof step !== 'number') continue;
    const row = steps.get(step) ?? {};
    for (const [k, v] of Object.entries(e.data!)) {
      if (k === 'step' || typeof v !== 'number') continue;
      const name = e.type === 'eval' ? `eval_${k}` : k;
      row[name] = v;
      columns.add(name);
    }
    steps.set(step, row);
  }
  const names = [...columns].sort();
  const lines = [['step', ...names].join(',')];
  for (const step of [...steps.keys()].sort((a, b) => a - b)) lines.push([step, ...names.map((n) => field(steps.get(step)![n]))].join(','));
  return { csv: lines.join('\n') + '\n', rows: steps.size };
}

/**
 * Writes the job's result CSV to the blob store and answers the statement that records it as a file, for the
 * finish's batch (guarded like the rest of it). The blob is written first: if the batch then does not apply, the
 * caller deletes it.
 */
export async function writeResultFile(deps: Deps, job: JobRow) {
  const { db } = deps.database;
  const events = await db
    .select({ type: jobEvents.type, data: jobEvents.data })
    .from(jobEvents)
    .where(and(eq(jobEvents.jobId, job.id), inArray(jobEvents.type, ['metrics', 'eval'])))
    .orderBy(asc(jobEvents.id));
  const { csv, rows } = stepMetricsCsv(events);
  const id = deps.ids.next('file');
  const blobKey = `files/${job.tenantId}/${id}`;
  const info = await deps.blobs.put(blobKey, new Blob([csv]).stream(), { contentType: 'text/csv' });
  return {
    id,
    blobKey,
    insert: (where: SQL, now: number) =>
      insertFromJobs(
        db,
        files,
        {
          id,
          tenantId: jobs.tenantId,
          filename: `${job.id}-step_metrics.csv`,
          purpose: 'fine-tune-results',
          bytes: info.size,
          examples: rows,
          sha256: info.sha256,
          blobKey,
          createdAt: now,
        },
        where,
      ),
  };
}
