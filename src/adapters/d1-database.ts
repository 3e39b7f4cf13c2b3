/**
 * The Database port on Cloudflare D1 (drizzle-orm/d1). D1 has no interactive transactions; `batch` is D1's
 * atomic batch (all statements commit or none do), which is what the port promises.
 */
import { drizzle } from 'drizzle-orm/d1';
import { schema } from '../db/schema';
import type { Database, Db } from '../ports';

export function createD1Database(binding: D1Database): Database {
  const db = drizzle(binding, { schema });
  return {
    // DrizzleD1Database is a BaseSQLiteDatabase<'async', D1Result, Schema>; the port only relies on 'async'.
    db: db as unknown as Db,
    batch: (statements) => db.batch(statements) as never,
  };
}
