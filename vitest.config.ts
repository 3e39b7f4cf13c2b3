// vitest for Node: every tests/**/*.test.ts except the Workers-runtime tests (tests/workers, run by
// vitest.workers.config.ts) and the Python fuzzer (tests/fuzz). Each test file runs in its own forked process
// with its own temp SQLite file and blob folder.  `npx vitest run` (npm run test:node)
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['tests/workers/**', 'tests/fuzz/**', 'node_modules/**', 'gpu-worker/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
