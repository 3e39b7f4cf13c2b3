/**
 * Rows written only while a job is in a given state: `INSERT INTO <table> SELECT <values> FROM jobs WHERE <guard>`.
 * src/jobs/lifecycle.ts puts them in the same batch as the guarded UPDATE of the job, so that a change and its event
 * (or its result file, or its checkpoint) are written together or not at all.
 */
import { getTableColumns, is, sql, SQL } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import { jobEvents, jobs } from '../db/schema';
import type { Db } from '../ports';

export interface NewEvent {
  level?: 'info' | 'warn' | 'error';
  type?: string;
  /** Text, or SQL over the `jobs` row (the sweep's messages name each job's attempt). */
  message: string | SQL;
  data?: Record<string, unknown> | SQL | null;
}

const value = (v: unknown): SQL => (v === undefined || v === null ? sql`null` : is(v, SQL) ? v : sql`${v}`);

/**
 * `INSERT INTO table SELECT <values> FROM jobs WHERE where`: one row per job matching `where`, none when the job
 * does not match. `values` name every column of `table` (absent ones are null); JSON columns take JSON text.
 */
export function insertFromJobs<T extends SQLiteTable>(db: Db, table: T, values: Partial<Record<keyof T['_']['columns'], unknown>>, where: SQL) {
  const columns = Object.keys(getTableColumns(table)) as (keyof T['_']['columns'])[];
  const select = sql.join(columns.map((c) => value(values[c])), sql`, `);
  return db.insert(table).select(sql`select ${select} from ${jobs} where ${where}`);
}

/** The event of a change, written for each job matching `where` (see the module comment). */
export function eventWhere(db: Db, where: SQL, e: NewEvent, now: number) {
  const data = e.data == null ? null : is(e.data, SQL) ? e.data : JSON.stringify(e.data);
  return insertFromJobs(
    db,
    jobEvents,
    { id: null, jobId: jobs.id, seq: null, level: e.level ?? 'info', type: e.type ?? 'status', message: e.message, data, createdAt: now },
    where,
  );
}
