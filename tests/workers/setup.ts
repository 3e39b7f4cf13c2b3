/** Applies migrations/ (read in Node by vitest.workers.config.ts) to the test D1 database; idempotent. */
import { applyD1Migrations, env } from 'cloudflare:test';

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
