/**
 * /dashboard in a real browser against a real stack: headless Chromium (Debian's, driven by puppeteer-core) on the
 * `npm start` stack (Node API child process + the Python gpu-worker process, real PyTorch, the bundled tiny model).
 * As a person would: enter the key, upload a JSONL file with a bad line and read the API's line error, upload a good
 * one, fill the hyperparameter form built from the API's schema (and read the API's 400 for an out-of-range value),
 * create a job that the worker runs, watch its charts grow with checkpoints marked, hover a chart for its values,
 * read the metrics table (a learning rate of 1e-5 does not show as 0) and the eval table, see the KL chart say that a
 * kl_beta 0 job measures no KL, pause, resume and cancel the job; then run the playground on the
 * base model against the job's checkpoint with one seed and see both vote histograms and the soft-thought view.
 * Screenshots are saved under test-artifacts/dashboard/ (tests/helpers/browser.ts). Skipped without Chromium.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataLines, startE2E, waitFor, type E2E } from '../e2e/stack';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import { CHROMIUM, launchBrowser, openPage, screenshot } from '../helpers/browser';
import { startSdkServer } from './server';

let e2e: E2E;
let browser: Browser;
let page: Page;
let problems: string[];
let jobId = '';

beforeAll(async () => {
  if (!CHROMIUM) return;
  [e2e, browser] = await Promise.all([startE2E(), launchBrowser()]);
  ({ page, problems } = await openPage(browser));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await e2e?.close();
});

function writeJsonl(name: string, lines: string[]): string {
  const path = join(mkdtempSync(join(tmpdir(), 'dash-upload-')), name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

const text = (selector: string) => page.$eval(selector, (e) => e.textContent ?? '');
const dataset = (selector: string, key: string) => page.$eval(selector, (e, k) => (e as HTMLElement).dataset[k] ?? '', key);

async function upload(path: string) {
  const input = await page.$('#upload-file');
  await (input as unknown as { uploadFile: (p: string) => Promise<void> }).uploadFile(path);
  const before = await text('#upload-status');
  await page.click('#upload');
  await page.waitForFunction((b) => {
    const s = document.getElementById('upload-status')!.textContent ?? '';
    return s !== b && !s.startsWith('uploading');
  }, { timeout: 30_000 }, before);
  return text('#upload-status');
}

async function setField(name: string, value: string) {
  await page.$eval(`#create-form [name="${name}"]`, (e, v) => {
    (e as HTMLInputElement).value = v;
  }, value);
}

describe.skipIf(!CHROMIUM)('dashboard in headless Chromium', () => {
  it('takes the key, uploads data (showing the API line error), creates a job from the schema-built form', async () => {
    await page.goto(`${e2e.stack.url}/dashboard`, { waitUntil: 'networkidle0' });
    await page.type('#key', e2e.key);
    await page.click('#save-key');
    await page.waitForSelector('#create-form');
    expect(await text('#key-state')).toBe('key set for this tab');
    await page.click('#new-job > summary');

    const bad = await upload(writeJsonl('bad.jsonl', [dataLines('train', 1)[0], '{"prompt": "What is 2+2?"}']));
    expect(await page.$eval('#upload-status', (e) => e.className)).toBe('error');
    expect(bad).toMatch(/line 2/);
    expect(bad).toMatch(/answer/);

    const good = await upload(writeJsonl('train.jsonl', dataLines('train', 8)));
    const fileId = /\((file-[^)]+)\)/.exec(good)?.[1];
    expect(good, good).toMatch(/uploaded train\.jsonl: 8 examples/);
    expect(await page.$eval('#training-file', (e) => (e as unknown as HTMLSelectElement).value)).toBe(fileId);
    await page.select('#validation-file', fileId!);

    // The form follows the API's schema: every hyperparameter with its default and auto rule, the grader variants.
    await page.click('#hyperparameters > summary');
    const hint = await page.$eval('#create-form [name="group_size"]', (e) => e.closest('label')!.textContent ?? '');
    expect(hint).toContain('default auto = 8');
    const graders = await page.$$eval('#grader-type option', (os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(graders).toEqual(expect.arrayContaining(['math', 'exact', 'numeric', 'regex']));
    await page.select('#grader-type', 'math');

    const hp = { n_steps: '60', batch_size: '2', group_size: '1', mini_batch_size: '1', max_response_tokens: '24', max_thinking_tokens: '16', learning_rate: '1e-5', eval_interval: '2', checkpoint_interval: '2', eval_samples: '2' };
    for (const [k, v] of Object.entries(hp)) await setField(k, v);
    await setField('suffix', 'dash');
    await page.click('#create-job');
    await page.waitForFunction(() => (document.getElementById('create-error')!.textContent ?? '') !== '', { timeout: 15_000 });
    expect(await text('#create-error')).toMatch(/group_size/);
    await screenshot(page, 'create-job', '#jobs-section');

    await setField('group_size', '2');
    await page.click('#create-job');
    await page.waitForSelector('#job-status', { timeout: 15_000 });
    jobId = (await text('#job-detail h2 code')).trim();
    expect(jobId).toMatch(/^ftjob-/);
    const job = (await e2e.api('GET', `/v1/finetune/${jobId}`)).body;
    expect(job.method.hyperparameters).toMatchObject({ n_steps: 60, group_size: 2, learning_rate: 1e-5, eval_samples: 2 });
    expect(job.validation_file).toBe(fileId);
    const resolved = await page.$eval('#job-hyperparameters', (e) => e.textContent ?? '');
    expect(resolved).toContain('group_size 2');
    expect(resolved).toContain('learning_rate 1e-5');
    expect(job.fine_tuned_model ?? `ft:${job.model}:dash:${job.id}`).toContain(':dash:');
  }, 120_000);

  it('shows live charts that grow as the worker trains, with checkpoints, hover values and a metrics table; pauses, resumes, cancels', async () => {
    const points = async () => Number(await dataset('#chart-reward', 'points'));
    await waitFor('two steps on the reward chart', async () => (await points()) >= 2, 150_000, 500);
    const first = await points();
    await waitFor('the reward chart to grow', async () => (await points()) > first, 120_000, 500);
    await waitFor('a checkpoint marked', async () => Number(await dataset('#chart-reward', 'checkpoints')) >= 1, 120_000, 500);
    await waitFor('an eval point', async () => Number(await dataset('#chart-passk', 'points')) >= 1, 120_000, 500);
    for (const id of ['reward', 'accuracy', 'entropy', 'thinking', 'tps']) {
      expect(Number(await dataset(`#chart-${id}`, 'points')), id).toBeGreaterThanOrEqual(2);
      expect(await page.$(`#chart-${id} canvas`), id).not.toBeNull();
    }

    // hover: the legend shows the values under the cursor
    const over = (await page.$('#chart-reward .u-over'))!;
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const legend = await page.$eval('#chart-reward .u-legend', (e) => e.textContent ?? '');
    expect(legend).toMatch(/step\s*\d+/);
    expect(legend).toMatch(/reward_mean\s*-?\d/);

    const table = await text('#metrics-table');
    expect(table).toMatch(/learning_rate\s*1e-5/);
    expect(table).toMatch(/ckpt \d+/);
    // the eval results: one row per eval step (step 0 before training, then every eval_interval = 2), Pass@1 and
    // Pass@2 (eval_samples 2) as the worker computed them, the same numbers as the job's eval events
    const evalEvents = ((await e2e.api('GET', `/v1/finetune/${jobId}/events?limit=100&order=asc`)).body.data as { type: string; data: Record<string, number> }[])
      .filter((e) => e.type === 'eval');
    const head = await page.$$eval('#eval-table tr:first-child th', (h) => h.map((x) => x.textContent));
    expect(head.slice(0, 5)).toEqual(['step', 'pass_at_1', 'pass_at_2', 'reward_mean', 'thinking_length']);
    const evalRows = await page.$$eval('#eval-table tr', (rs) => rs.slice(1).map((r) => [...r.children].map((c) => (c as HTMLElement).title || c.textContent)));
    expect(evalRows.at(-1)![0]).toBe('0');
    const step0 = evalEvents.find((e) => e.data.step === 0)!.data;
    expect(evalRows.at(-1)!.slice(1, 3)).toEqual([String(step0.pass_at_1), String(step0.pass_at_2)]);
    // the bundled model's recipe has kl_beta 0: no KL is measured, and the chart and the worker's lines say so
    expect((await e2e.api('GET', `/v1/finetune/${jobId}`)).body.method.hyperparameters.kl_beta).toBe(0);
    expect(await text('#chart-kl .chart-empty')).toBe('KL not computed: kl_beta 0 (no KL term, no reference policy)');
    expect(await page.$('#chart-kl canvas')).toBeNull();
    const log = await text('#job-detail');
    expect(log).toMatch(/step \d+\/60: reward [\d.]+, accuracy [\d.]+, kl not computed \(kl_beta 0\)/);
    expect(log).not.toMatch(/kl 0\.0000/);
    await screenshot(page, 'job-live', '#job-detail');
    await screenshot(page, 'job-live-page');

    // pause, then resume: the buttons follow the status
    const status = () => text('#job-status');
    await page.click('#job-pause');
    await page.waitForFunction(() => ['pausing', 'paused'].includes(document.getElementById('job-status')?.textContent ?? ''), { timeout: 30_000 });
    await page.waitForSelector('#job-resume', { timeout: 30_000 });
    expect(await page.$('#job-pause')).toBeNull();
    await page.click('#job-resume');
    await page.waitForFunction(() => ['queued', 'running'].includes(document.getElementById('job-status')?.textContent ?? ''), { timeout: 30_000 });
    expect(['queued', 'running']).toContain(await status());
    await page.waitForSelector('#job-pause', { timeout: 30_000 });

    await page.click('#job-cancel');
    await page.waitForFunction(() => document.getElementById('job-status')?.textContent === 'cancelled', { timeout: 30_000 });
    expect((await e2e.api('GET', `/v1/finetune/${jobId}`)).body.status).toBe('cancelled');
  }, 420_000);

  it('runs the playground: base model and the job\'s checkpoint side by side on one seed, histograms, soft thoughts', async () => {
    const checkpoints = (await e2e.api('GET', `/v1/finetune/${jobId}/checkpoints`)).body.data as { fine_tuned_model_checkpoint: string }[];
    const ckpt = checkpoints[0].fine_tuned_model_checkpoint;
    await page.click('#refresh-jobs');
    await page.evaluate(() => document.getElementById('playground')!.scrollIntoView());
    await page.waitForFunction((m) => [...document.querySelectorAll('#compare-model option')].some((o) => (o as HTMLOptionElement).value === m), { timeout: 15_000 }, ckpt)
      .catch(async () => {
        // the model list is read at load: reload the models by re-entering the key
        await page.type('#key', e2e.key);
        await page.click('#save-key');
        await page.waitForFunction((m) => [...document.querySelectorAll('#compare-model option')].some((o) => (o as HTMLOptionElement).value === m), { timeout: 15_000 }, ckpt);
      });
    await page.select('#model', 'tiny-arith');
    await page.select('#compare-model', ckpt);
    await page.$eval('#n', (e) => ((e as HTMLInputElement).value = '4'));
    await page.$eval('#seed', (e) => ((e as HTMLInputElement).value = '7'));
    await page.$eval('#max-tokens', (e) => ((e as HTMLInputElement).value = '64'));
    await page.$eval('#gumbel-tau', (e) => ((e as HTMLInputElement).value = '1')); // mixes more evenly than 0.1
    await page.$eval('#prompt', (e) => ((e as HTMLTextAreaElement).value = 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?'));
    await page.click('#run');
    await page.waitForFunction(() => [...document.querySelectorAll('#results .vote')].filter((v) => v.textContent!.startsWith('answer:')).length === 2, { timeout: 120_000 });

    for (const run of ['#run-0', '#run-1']) {
      expect(await text(`${run} .vote`)).toMatch(/seed 7/);
      expect(await page.$$eval(`${run} .sample`, (s) => s.length)).toBe(4);
      const bars = await page.$$eval(`${run} .histogram .bar-count`, (b) => b.map((x) => Number(x.textContent)));
      expect(bars.reduce((a, b) => a + b, 0)).toBe(4);
      const steps = await page.$$eval(`${run} .sample .soft-thoughts .step`, (s) => s.length);
      expect(steps).toBeGreaterThan(0);
      const weights = await page.$$eval(`${run} .sample:first-child .step:first-child .tok-w`, (w) => w.map((x) => x.textContent ?? ''));
      expect(weights.length).toBeGreaterThanOrEqual(1);
      for (const w of weights) expect(w).toMatch(/^(\d+\.\d%|<0\.1%)$/);
      const mixed = await page.$$eval(`${run} .step`, (ss) => ss.filter((x) => x.querySelectorAll('.tok').length >= 2).length);
      expect(mixed, 'steps that visibly mix two or more tokens').toBeGreaterThan(0);
    }
    expect(await text('#run-0 h3')).toBe('tiny-arith');
    expect(await text('#run-1 h3')).toBe(ckpt);
    // the base column is what the API answers for the same seed
    const direct = (await e2e.api('POST', '/v1/reason', { model: 'tiny-arith', prompt: 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?', n: 4, seed: 7, max_tokens: 64, soft_thinking: { gumbel_tau: 1 } })).body;
    expect(await text('#run-0 .vote')).toContain(`answer: ${direct.aggregate.answer ?? '-'} (${direct.aggregate.votes}/4 votes`);
    await screenshot(page, 'playground-compare', '#playground');
    expect(problems).toEqual([]);
  }, 240_000);
});

describe.skipIf(!CHROMIUM)('dashboard playground with a remote engine', () => {
  it('asks again without soft thoughts when the model\'s engine cannot record them, and says so', async () => {
    // The real app with tiny-arith served by a remote engine (nothing listens there): /v1/reason answers the
    // soft_thoughts request with its 400 before any engine call; the retry reaches the engine and fails.
    const remote = await startSdkServer();
    remote.t.deps.engines = createNodeEngineRegistry({ models: { 'tiny-arith': { engine: 'remote', url: 'http://127.0.0.1:9', context_length: 512 } } });
    const { page: p } = await openPage(browser);
    try {
      await p.goto(`${remote.base}/dashboard#key=${encodeURIComponent(remote.key)}`, { waitUntil: 'networkidle0' });
      await p.waitForSelector('#model option[value="tiny-arith"]');
      await p.click('#run');
      await p.waitForSelector('#run-0 .note', { timeout: 30_000 });
      await p.waitForFunction(() => (document.querySelector('#run-0 .vote')?.textContent ?? '') !== 'running...', { timeout: 30_000 });
      expect(await p.$eval('#run-0 .note', (e) => e.textContent)).toMatch(/^no soft thoughts: soft_thoughts: .*remote/);
      // the retry went to the engine: its failure (an error event inside the stream) is shown, not the 400 again
      expect(await p.$eval('#run-0 .vote', (e) => e.className)).toBe('vote error');
      expect(await p.$eval('#run-0 .vote', (e) => e.textContent ?? '')).not.toContain('soft_thoughts');
    } finally {
      await p.close();
      await remote.close();
    }
  }, 60_000);
});
