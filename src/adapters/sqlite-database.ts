/**
 * `Database` port on Node: a better-sqlite3 file with drizzle, foreign keys on, WAL journal, and the migrations
 * of migrations/ applied at open.
 *
 * Durability: WAL with synchronous=NORMAL by default. A commit is durable across a crash of the process (the WAL
 * is in the OS's page cache), but the last commits before a power loss or kernel crash can be lost; the database
 * itself stays consistent either way. Many production SQLite deployments choose this: a commit then costs no
 * fsync (only checkpoints do), which cut job creation latency (bench/results-api.md). SQLITE_SYNCHRONOUS=FULL
 * (an fsync per commit) makes every acknowledged write survive power loss too. better-sqlite3 is synchronous; drizzle's sync query builders return plain values,
 * which the app `await`s like D1's promises, so the same handler code runs on both.
 */
import BetterSqlite3 from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { fileURLToPath } from 'node:url';
import { schema } from '../db/schema';
import type { Database, Db } from '../ports';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface SqliteDatabase extends Database {
  /** The raw connection (tests count rows with it; scripts use it). */
  sqlite: BetterSqlite3.Database;
  close(): void;
}

/** Whether drizzle's statement answers rows (`.returning()`, or a select) rather than a run result. */
function returnsRows(statement: unknown): statement is { all(): unknown } {
  const config = (statement as { config?: { returning?: unknown; fields?: unknown; set?: unknown; values?: unknown } }).config;
  return config?.returning !== undefined || (config?.fields !== undefined && config.set === undefined && config.values === undefined);
}

export const SYNCHRONOUS_LEVELS = ['NORMAL', 'FULL'] as const;
export type SynchronousLevel = (typeof SYNCHRONOUS_LEVELS)[number];

export function openSqliteDatabase(
  path: string,
  opts: { migrationsFolder?: string; synchronous?: SynchronousLevel } = {},
): SqliteDatabase {
  const sqlite = new BetterSqlite3(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const orm = drizzle(sqlite, { schema });
  migrate(orm, { migrationsFolder: opts.migrationsFolder ?? MIGRATIONS_DIR });
  return {
    // The sync driver is used through the async type: every call site awaits, and awaiting a value is a no-op.
    db: orm as unknown as Db,
    sqlite,
    async batch(statements) {
      return sqlite.transaction(() => statements.map((s) => (returnsRows(s) ? s.all() : (s as unknown as { run(): unknown }).run())))() as never;
    },
    close: () => sqlite.close(),
  };
}
