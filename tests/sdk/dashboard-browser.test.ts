/**
 * /dashboard in a real browser: headless Chromium (Debian's `chromium`, or CHROMIUM_PATH) loads the page from the
 * real app over loopback HTTP with `#key=...&job=...`, runs its module, and the DOM it dumps shows the models, the
 * jobs, the opened job with its reward curve (from metrics events a protocol-speaking test worker posted) and its
 * checkpoint. Skipped when no Chromium is installed.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WORKER_TOKEN } from '../helpers/app';
import { TestWorker } from '../helpers/worker-client';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

let s: SdkServer;
beforeAll(async () => {
  if (CHROMIUM) s = await startSdkServer();
});
afterAll(() => s?.close());

async function dumpDom(url: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    CHROMIUM!,
    ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions', '--virtual-time-budget=15000', '--dump-dom', url],
    { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout;
}

it.skipIf(!CHROMIUM)('shows models, jobs, a job\'s reward curve and checkpoint in headless Chromium', async () => {
  const api = s.sdk();
  const file = await api.uploadFile(new Blob([TRAIN_JSONL]), { filename: 'train.jsonl' });
  const job = await api.createJob({ model: 'tiny-arith', training_file: file.id, suffix: 'dash' });
  const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
  const claim = (await worker.claim())!;
  const seq = claim.next_event_seq;
  const rewards = [0.2, 0.4, 0.6];
  expect(
    (await worker.events(job.id, claim.lease.token, rewards.map((r, i) => ({ seq: seq + i, type: 'metrics', message: `step ${i + 1}`, data: { step: i + 1, reward_mean: r } })))).status,
  ).toBe(200);
  expect((await worker.checkpoint(job.id, claim.lease.token, 3, { 'config.json': '{}' }, { reward_mean: 0.6 })).status).toBe(200);

  const dom = await dumpDom(`${s.base}/dashboard#key=${encodeURIComponent(s.key)}&job=${job.id}`);
  expect(dom).toContain('key set for this tab');
  expect(dom).toMatch(/<div id="error"[^>]*><\/div>/);
  expect(dom).toMatch(/<td>tiny-arith<\/td><td>base<\/td>/);
  expect(dom).toContain(`<code>${job.id}</code>`);
  expect(dom).toMatch(/class="status-running">running</);
  expect(dom).toContain('<option value="tiny-arith">tiny-arith</option>');
  const points = dom.match(/<polyline points="([^"]+)"/);
  expect(points, 'reward curve').not.toBeNull();
  expect(points![1].trim().split(/\s+/)).toHaveLength(3);
  expect(dom).toContain(`ft:tiny-arith:dash:${job.id}:ckpt-3`);
}, 90_000);
