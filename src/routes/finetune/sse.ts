/**
 * The job event stream (`GET .../events?stream=true`): polls the event table and sends each new event as
 * `event: event` with its id as the SSE id, `: keep-alive` comments while idle (proxies and Workers drop quiet
 * connections), and `event: done` once the job is finished and every event was sent. A stream lasts at most
 * Config.sse.maxStreamMs; clients reconnect with Last-Event-ID (or `after`) and lose nothing.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { and, asc, eq, gt } from 'drizzle-orm';
import { TERMINAL_STATUSES, jobEvents, jobs } from '../../db/schema';
import type { AppEnv } from '../../router';
import { eventId, toEventObject } from '../../jobs/objects';

const BATCH = 100;

export function streamJobEvents(c: Context<AppEnv>, jobId: string, after: number) {
  const deps = c.get('deps');
  const { db } = deps.database;
  const { pollMs, keepAliveMs, maxStreamMs } = deps.config.sse;
  return streamSSE(c, async (stream) => {
    let cursor = after;
    const started = Date.now();
    let lastWrite = started;
    while (!stream.aborted && !stream.closed) {
      const rows = await db
        .select()
        .from(jobEvents)
        .where(and(eq(jobEvents.jobId, jobId), gt(jobEvents.id, cursor)))
        .orderBy(asc(jobEvents.id))
        .limit(BATCH);
      for (const r of rows) {
        await stream.writeSSE({ id: eventId(r.id), event: 'event', data: JSON.stringify(toEventObject(r)) });
        cursor = r.id;
        lastWrite = Date.now();
      }
      if (rows.length === BATCH) continue;
      const job = await db.select({ status: jobs.status }).from(jobs).where(eq(jobs.id, jobId)).get();
      if (!job || TERMINAL_STATUSES.includes(job.status)) {
        // Events written just before the final status change may have landed after the read above.
        const late = await db
          .select({ id: jobEvents.id })
          .from(jobEvents)
          .where(and(eq(jobEvents.jobId, jobId), gt(jobEvents.id, cursor)))
          .get();
        if (late) continue;
        await stream.writeSSE({ event: 'done', data: JSON.stringify({ status: job?.status ?? 'deleted' }) });
        return;
      }
      if (Date.now() - started > maxStreamMs) return;
      if (Date.now() - lastWrite >= keepAliveMs) {
        await stream.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      await stream.sleep(pollMs);
    }
  });
}
