/**
 * The `soft-reason` CLI (cli/) against the real app over loopback HTTP: main() in-process for the commands, and the
 * executable entry (tsx cli/soft-reason.ts) once as a child process. Reasoning runs on the bundled tiny model
 * (onnxruntime-node): `reason --stream` prints the text as it arrives; `finetune create --follow` draws a
 * cli-progress bar (on a terminal-like stream) while a protocol-speaking test worker posts steps; `events --follow`
 * prints one readable line per event, or JSON with --json.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type CliIO } from '../../cli/main';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import { WORKER_TOKEN } from '../helpers/app';
import { TestWorker } from '../helpers/worker-client';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

const ROOT = resolve(__dirname, '../..');
let s: SdkServer;
beforeAll(async () => {
  s = await startSdkServer();
  s.t.deps.engines = createNodeEngineRegistry({ models: { 'tiny-arith': { engine: 'onnx', folder: resolve(ROOT, process.env.TINY_MODEL_DIR ?? 'models/tiny') } } });
});
afterAll(() => s?.close());

async function cli(...argv: string[]) {
  return cliWith({}, ...argv);
}

async function cliWith(extra: Partial<CliIO>, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    env: { SOFT_REASON_API_KEY: s.key, SOFT_REASON_BASE_URL: s.base },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    ...extra,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const QUESTION = 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?';

describe('soft-reason CLI', () => {
  it('refuses to run without SOFT_REASON_API_KEY, and prints usage for an unknown command', async () => {
    const err: string[] = [];
    expect(await main(['models'], { env: {}, out: () => {}, err: (l) => err.push(l) })).toBe(2);
    expect(err.join('\n')).toContain('SOFT_REASON_API_KEY');
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command');
    expect(r.err).toContain('usage: soft-reason');
  });

  it('lists models, uploads and lists files', async () => {
    const models = await cli('models');
    expect(models.code).toBe(0);
    expect(models.out).toMatch(/tiny-arith\s+base/);
    const path = join(mkdtempSync(join(tmpdir(), 'cli-')), 'train.jsonl');
    writeFileSync(path, TRAIN_JSONL);
    const up = await cli('files', 'upload', path, '--json');
    expect(up.code).toBe(0);
    const file = JSON.parse(up.out);
    expect(file).toMatchObject({ object: 'file', filename: 'train.jsonl', examples: 3 });
    const list = await cli('files', 'list');
    expect(list.out).toContain(file.id);
  });

  it('creates a job with hyperparameters, pauses, resumes, cancels it, and prints its events (also with --follow)', async () => {
    const file = JSON.parse((await cli('files', 'upload', writeTemp(), '--json')).out);
    const created = await cli('finetune', 'create', '--model', 'tiny-arith', '--training-file', file.id, '--hp', 'n_steps=3', '--hp', 'noise_scale=auto', '--suffix', 'cli', '--metadata', 'team=a', '--json');
    expect(created.code, created.err).toBe(0);
    const job = JSON.parse(created.out);
    expect(job.method.hyperparameters).toMatchObject({ n_steps: 3 });
    expect(job.metadata).toEqual({ team: 'a' });
    expect((await cli('finetune', 'pause', job.id)).out).toMatch(/status\s+paused/);
    expect((await cli('finetune', 'resume', job.id)).out).toMatch(/status\s+queued/);
    expect((await cli('finetune', 'list')).out).toMatch(new RegExp(`${job.id}\\s+queued`));
    expect((await cli('finetune', 'cancel', job.id)).out).toMatch(/status\s+cancelled/);
    const events = await cli('finetune', 'events', job.id);
    const follow = await cli('finetune', 'events', job.id, '--follow');
    expect(follow.code).toBe(0);
    expect(follow.out).toBe(events.out);
    expect(events.out.split('\n').length).toBeGreaterThanOrEqual(2);
  });

  it('reason --stream writes one sample\'s thinking and answer as they arrive, the same text as the whole answer', async () => {
    const whole = JSON.parse((await cli('reason', QUESTION, '--seed', '5', '--max-tokens', '48', '--json')).out);
    const writes: string[] = [];
    const r = await cliWith({ write: (t) => writes.push(t) }, 'reason', QUESTION, '--seed', '5', '--max-tokens', '48', '--stream');
    expect(r.code, r.err).toBe(0);
    const c = whole.choices[0];
    expect(writes.length).toBeGreaterThan(4); // token by token, not one block
    expect(writes.join('')).toBe(`thinking: ${c.reasoning}answer: ${c.answer.replace(/^\n+/, '')}\n`);
    expect(r.out).toContain(`[0] done: ${c.finish_reason}, thinking ended: ${c.thinking_end}, extracted ${c.extracted_answer ?? '-'}`);
    expect(r.out).toContain(`answer: ${whole.aggregate.answer ?? '-'}  (${whole.aggregate.votes}/1 votes, seed 5`);
  }, 60_000);

  it('reason --stream with several samples prints each sample\'s lines with its index', async () => {
    const whole = JSON.parse((await cli('reason', QUESTION, '--n', '3', '--seed', '9', '--max-tokens', '48', '--json')).out);
    const r = await cli('reason', QUESTION, '--n', '3', '--seed', '9', '--max-tokens', '48', '--stream');
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    for (const c of whole.choices) {
      const thinking = lines.filter((l) => l.startsWith(`[${c.index}] thinking| `)).map((l) => l.slice(`[${c.index}] thinking| `.length));
      const nonEmpty = (text: string) => text.split('\n').filter((l) => l !== '');
      expect(thinking).toEqual(nonEmpty(c.reasoning));
      const answer = lines.filter((l) => l.startsWith(`[${c.index}] answer  | `)).map((l) => l.slice(`[${c.index}] answer  | `.length));
      expect(answer).toEqual(nonEmpty(c.answer));
      expect(answer.length).toBeGreaterThan(0);
    }
  }, 60_000);

  it('finetune create --follow draws a progress bar with step, reward and ETA while a worker trains, then the job', async () => {
    const file = JSON.parse((await cli('files', 'upload', writeTemp(), '--json')).out);
    const drawn: string[] = [];
    const tty = { isTTY: true, columns: 120, write: (t: string) => drawn.push(t) };
    const following = cliWith({ progress: tty }, 'finetune', 'create', '--model', 'tiny-arith', '--training-file', file.id, '--hp', 'n_steps=3', '--follow');
    const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
    let claim = null;
    for (let i = 0; i < 200 && !claim; i++) claim = (await worker.claim()) ?? (await new Promise((r) => setTimeout(r, 25)), null);
    const seq = claim!.next_event_seq;
    const jobId = claim!.job.id;
    const rewards = [0.2, 0.4, 0.6];
    for (const [i, r] of rewards.entries()) {
      const res = await worker.events(jobId, claim!.lease.token, [{ seq: seq + i, type: 'metrics', message: `step ${i + 1}/3: reward ${r}`, data: { step: i + 1, reward_mean: r } }]);
      expect(res.status).toBe(200);
      // the bar redraws at most 10 times a second: wait for this step to be drawn before the next
      for (let t = 0; t < 400 && !drawn.join('').includes(`step ${i + 1}/3 `); t++) await new Promise((w) => setTimeout(w, 25));
    }
    expect((await worker.checkpoint(jobId, claim!.lease.token, 3, { 'config.json': '{}' }, { reward_mean: 0.6 })).status).toBe(200);
    expect((await worker.raw(`/internal/jobs/${jobId}/finish`, { lease_token: claim!.lease.token })).status).toBe(200);
    const r = await following;
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`created ${jobId}`);
    expect(r.out).toMatch(/status\s+succeeded/);
    const screen = drawn.join('');
    expect(screen).toMatch(/step 3\/3 \|\u2588+\| reward 0\.600 \| succeeded \| ETA 0s/);
    expect(screen).toMatch(/step [12]\/3 \|\u2588+\u2591+\| reward 0\.[24]00 \| running \| ETA (\d+[hms]|\d+m\d+s|-)/);
  }, 60_000);

  it('finetune create --follow without a terminal prints one line per step, and exits 1 when the job does not succeed', async () => {
    const file = JSON.parse((await cli('files', 'upload', writeTemp(), '--json')).out);
    const following = cli('finetune', 'create', '--model', 'tiny-arith', '--training-file', file.id, '--hp', 'n_steps=2', '--follow', '--json');
    const worker = new TestWorker(s.t.fetch, WORKER_TOKEN);
    let claim = null;
    for (let i = 0; i < 200 && !claim; i++) claim = (await worker.claim()) ?? (await new Promise((r) => setTimeout(r, 25)), null);
    const jobId = claim!.job.id;
    await worker.events(jobId, claim!.lease.token, [{ seq: claim!.next_event_seq, type: 'metrics', message: 'step 1/2', data: { step: 1, reward_mean: 0.25 } }]);
    await waitForEvents(jobId, 'step 1/2');
    await s.sdk().cancelJob(jobId);
    const r = await following;
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/step 1\/2 {2}reward 0\.250 {2}ETA \S+/);
    expect(JSON.parse(r.out)).toMatchObject({ id: jobId, status: 'cancelled' });
  }, 60_000);

  it('events --follow prints readable lines, and JSON lines with --json', async () => {
    const file = JSON.parse((await cli('files', 'upload', writeTemp(), '--json')).out);
    const job = JSON.parse((await cli('finetune', 'create', '--model', 'tiny-arith', '--training-file', file.id, '--json')).out);
    await cli('finetune', 'cancel', job.id);
    const human = await cli('finetune', 'events', job.id, '--follow');
    const lines = human.out.split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\S+Z {2}(info |warn |error) {2}\S+\s+\S/);
    expect(human.out).not.toContain('{');
    expect(human.out).toMatch(/status\s+Job cancelled/i);
    const json = await cli('finetune', 'events', job.id, '--follow', '--json');
    const events = json.out.split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => e.message)).toEqual(lines.map((l) => l.replace(/^(\S+\s+){3}/, '')));
  });

  it('prints API errors with status, code and request id, and exits 1', async () => {
    const r = await cli('finetune', 'get', 'ftjob-nope');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/HTTP 404/);
    expect(r.err).toMatch(/request id \S+/);
    const bad = await cli('finetune', 'create', '--model', 'tiny-arith', '--training-file', 'file-missing');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/training_file/);
    const usage = await cli('finetune', 'create', '--model', 'tiny-arith');
    expect(usage.code).toBe(2);
  });

  it('says when the API cannot be reached', async () => {
    const err: string[] = [];
    const code = await main(['models'], { env: { SOFT_REASON_API_KEY: 'sk-x', SOFT_REASON_BASE_URL: 'http://127.0.0.1:9' }, out: () => {}, err: (l) => err.push(l) });
    expect(code).toBe(1);
    expect(err.join('\n')).toContain('cannot reach http://127.0.0.1:9');
  });

  it('runs as a command (tsx cli/soft-reason.ts) with the key and base URL from the environment', async () => {
    const { stdout } = await promisify(execFile)(resolve(ROOT, 'node_modules/.bin/tsx'), ['cli/soft-reason.ts', 'models'], {
      cwd: ROOT,
      env: { ...process.env, SOFT_REASON_API_KEY: s.key, SOFT_REASON_BASE_URL: s.base },
    });
    expect(stdout).toMatch(/tiny-arith\s+base/);
  }, 60_000);
});

async function waitForEvents(jobId: string, text: string) {
  for (let i = 0; i < 200; i++) {
    const page = await s.sdk().events(jobId, { limit: 100 });
    if (page.data.some((e) => e.message.includes(text))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no event with ${text}`);
}

function writeTemp() {
  const path = join(mkdtempSync(join(tmpdir(), 'cli-')), 'data.jsonl');
  writeFileSync(path, TRAIN_JSONL);
  return path;
}

describe('progress ETA', () => {
  it('reads the pace since following began, and says "-" before any step', async () => {
    const { eta, duration } = await import('../../cli/job-progress');
    expect(eta(0, 10_000, 0, 0, 10)).toBe('-');
    expect(eta(0, 10_000, 0, 2, 10)).toBe('40s'); // 5 s a step, 8 to go
    expect(eta(0, 60_000, 4, 5, 10)).toBe('5m00s'); // resumed at step 4: one step in a minute, 5 to go
    expect(eta(0, 1000, 0, 10, 10)).toBe('0s');
    expect(eta(0, 1000, 0, 3, 0)).toBe('-');
    expect(duration(3725)).toBe('1h02m');
  });
});
