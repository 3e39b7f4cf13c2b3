/**
 * vitest inside the real Workers runtime (workerd, through @cloudflare/vitest-pool-workers): the Worker of
 * wrangler.toml (src/entry/worker.ts) with a local D1 database and R2 bucket. The migrations in migrations/ are
 * read here in Node and applied to D1 by tests/workers/setup.ts before the tests run, which also uploads the
 * bundled tiny model's tokenizer files read here.
 *
 *   npx vitest run --config vitest.workers.config.ts      (npm run test:workers)
 */
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const migrations = fileURLToPath(new URL("./migrations", import.meta.url));
// The bundled tiny model's tokenizer, uploaded with the test base model: job creation tokenizes prompts with it.
const tinyFile = (name: string) => readFileSync(new URL(`./models/tiny/${name}`, import.meta.url), "utf8");

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
          TEST_TOKENIZER_JSON: tinyFile("tokenizer.json"),
          TEST_TOKENIZER_CONFIG_JSON: tinyFile("tokenizer_config.json"),
        },
      },
    })),
  ],
  test: {
    include: ["tests/workers/**/*.test.ts"],
    setupFiles: ["./tests/workers/setup.ts"],
  },
});
