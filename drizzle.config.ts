/** drizzle-kit configuration: `npx drizzle-kit generate` writes D1-compatible SQLite migrations to migrations/. */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema.ts',
  out: './migrations',
});
