/// <reference types="@cloudflare/vitest-pool-workers/types" />
// Bindings of the Worker under test (wrangler.toml + the test secrets of vitest.workers.config.ts).
import type { D1Migration } from 'cloudflare:test';
import type { WorkerEnv } from '../../src/entry/worker';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[];
      TEST_TOKENIZER_JSON: string;
      TEST_TOKENIZER_CONFIG_JSON: string;
    }
  }
}
