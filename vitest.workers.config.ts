/**
 * vitest inside the real Workers runtime (workerd, through @cloudflare/vitest-pool-workers): the Worker of
 * wrangler.toml (src/entry/worker.ts) with a local D1 database and R2 bucket. The migrations in migrations/ are
 * read here in Node and applied to D1 by tests/workers/setup.ts before the tests run.
 *
 *   npx vitest run --config vitest.workers.config.ts      (npm run test:workers)
 */
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const migrations = fileURLToPath(new URL("./migrations", import.meta.url));

export default defineConfig({
  plugins: [
    cloudflareTest(async () => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Secrets of the deployment (wrangler.toml documents them); test values here.
        bindings: {
          WORKER_TOKEN: "workers-test-worker-token",
          SIGNING_SECRET: "workers-test-signing-secret-0123456789abcdef",
          TEST_MIGRATIONS: await readD1Migrations(migrations),
        },
      },
    })),
  ],
  test: {
    include: ["tests/workers/**/*.test.ts"],
    setupFiles: ["./tests/workers/setup.ts"],
  },
});
