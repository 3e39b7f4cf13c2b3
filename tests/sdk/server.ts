/** The real app (tests/helpers) served over loopback HTTP, with a tenant key and an SDK client, for the SDK/CLI tests. */
import { SoftReason, type SoftReasonOptions } from '../../sdk/typescript';
import type { Config } from '../../src/ports';
import { makeTestApp, type TestApp } from '../helpers/app';
import { listen } from '../helpers/server';

export interface SdkServer {
  t: TestApp;
  base: string;
  key: string;
  sdk: (opts?: SoftReasonOptions) => SoftReason;
  close: () => Promise<void>;
}

export async function startSdkServer(config?: Partial<Config>): Promise<SdkServer> {
  const t = await makeTestApp({ config });
  const { key } = await t.newTenant();
  const server = await listen(t.app);
  return {
    t,
    base: server.base,
    key,
    sdk: (opts = {}) => new SoftReason({ apiKey: key, baseUrl: server.base, ...opts }),
    close: async () => {
      await server.close();
      t.close();
    },
  };
}

export const TRAIN_JSONL =
  [
    { prompt: 'What is 2+3?', answer: 5 },
    { messages: [{ role: 'user', content: 'What is 7*6?' }], answer: '42' },
    { prompt: 'What is 10-4?', answer: 6 },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n') + '\n';
