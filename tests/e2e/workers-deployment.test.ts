/**
 * The Workers deployment end to end, as docs/DEPLOY.md sets it up, on `wrangler dev` (the real workerd runtime
 * with local D1 and R2 in a temp --persist-to folder):
 *
 *   npm run create-api-key -- --d1 local     an API key in D1 (migrations applied by the same command)
 *   npm run upload-model -- models/tiny      the base model into R2
 *   wrangler dev                             the Worker
 *
 * then a dataset upload, a soft_grpo job run by a real `python -m softgrpo.worker` process against the Worker
 * (2 steps), its checkpoint in R2 (downloaded through its signed URL, hash checked), a `python -m softgrpo.serve`
 * replica that registers itself and serves /v1/reason and a streamed chat on the fine-tuned checkpoint it loads
 * from signed URLs, and the lease sweep through the scheduled handler (`/__scheduled`, wrangler's --test-scheduled).
 *
 *   npx vitest run tests/e2e/workers-deployment.test.ts      (E2E_VERBOSE=1 prints every process's output)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, ROOT } from '../../scripts/start-stack';
import { sseChunks } from '../helpers/reasoning';
import { dataLines, freePort, waitFor } from './stack';

const WORKER_TOKEN = 'wt-wrangler-dev-e2e';
const LEASE_SECONDS = 6;
// a CPU-sized job: 2 prompts x 2 rollouts with short responses
const SMALL = { batch_size: 2, group_size: 2, mini_batch_size: 1, max_response_tokens: 24, max_thinking_tokens: 16 };
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' };
const persist = mkdtempSync(join(tmpdir(), 'wrangler-e2e-'));
const children: ChildProcess[] = [];
const output: string[] = [];
let base: string;
let key: string;

function start(name: string, command: string, args: string[], cwd = ROOT): ChildProcess {
  // own process group: stopping wrangler dev needs its whole group, or workerd keeps running
  const child = spawn(command, args, { cwd, env: { ...env, OMP_NUM_THREADS: '1' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!])
    s.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        output.push(`[${name}] ${line}`);
        if (process.env.E2E_VERBOSE) console.log(`[${name}] ${line}`);
      }
    });
  children.push(child);
  return child;
}
const stop = (child: ChildProcess) => {
  if (child.exitCode === null && child.pid) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
};

function script(args: string[]): string {
  const run = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${args.join(' ')} failed:\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
};
const internal = async (path: string, body?: unknown) =>
  (
    await fetch(`${base}/internal${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  ).json() as Promise<any>;

beforeAll(async () => {
  // the README's setup commands, as written, against the local state of the wrangler dev below
  key = script(['scripts/create-api-key.ts', '--d1', 'local', '--persist-to', persist]).trim();
  expect(key).toMatch(/^sk-/);
  script(['scripts/upload-model.ts', 'models/tiny', '--persist-to', persist]);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  start('wrangler', process.execPath, [
    join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
    '--test-scheduled', '--var', `WORKER_TOKEN:${WORKER_TOKEN}`, '--var', 'SIGNING_SECRET:wrangler-dev-e2e-signing-secret',
    '--var', `LEASE_SECONDS:${LEASE_SECONDS}`,
  ]);
  await waitFor('wrangler dev', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 90_000, 500);
}, 180_000);

afterAll(async () => {
  children.forEach(stop);
  await new Promise((r) => setTimeout(r, 500));
  rmSync(persist, { recursive: true, force: true });
});

describe('the Workers deployment on wrangler dev', () => {
  let jobId = '';
  let fineTuned = '';
  let trainingFile = '';

  it('fine_tunes_with_a_real_worker_process_against_the_worker_and_keeps_the_checkpoint_in_r2', async () => {
    expect((await api('GET', '/v1/models')).body.data.map((m: any) => m.id)).toContain('tiny-arith');
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', new Blob([dataLines('train', 8).join('\n') + '\n']), 'train.jsonl');
    const up = await fetch(`${base}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
    const file = (await up.json()) as any;
    expect(up.status, JSON.stringify(file)).toBe(200);
    trainingFile = file.id;
    const created = await api('POST', '/v1/finetune', {
      model: 'tiny-arith',
      training_file: file.id,
      suffix: 'wk',
      seed: 5,
      method: {
        type: 'soft_grpo',
        hyperparameters: { ...SMALL, n_steps: 2, checkpoint_interval: 2 },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    jobId = created.body.id;
    start('worker', PYTHON, ['-m', 'softgrpo.worker', '--api', base, '--token', WORKER_TOKEN, '--once', '--poll-seconds', '0.5', '--device', 'cpu', '--no-onnx', '--threads', '1'], join(ROOT, 'gpu-worker'));
    const done = await waitFor(
      'the job to finish',
      async () => {
        const j = (await api('GET', `/v1/finetune/${jobId}`)).body;
        return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
      },
      240_000,
      1000,
    ).catch((err) => {
      throw new Error(`${err.message}\n${output.slice(-40).join('\n')}`);
    });
    expect(done.status, `${JSON.stringify(done.error)}\n${output.filter((l) => l.startsWith('[worker]')).slice(-30).join('\n')}`).toBe('succeeded');
    fineTuned = done.fine_tuned_model;
    expect(fineTuned).toBe(`ft:tiny-arith:wk:${jobId}`);

    // the checkpoint's files are in R2: downloaded through the Worker's signed URL, bytes match the registered hash
    const files = (await api('GET', `/v1/models/${encodeURIComponent(fineTuned)}/files`)).body.data as any[];
    const weights = files.find((f) => f.name === 'model.safetensors');
    const bytes = Buffer.from(await (await fetch(weights.url)).arrayBuffer());
    expect(bytes.length).toBe(weights.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(weights.sha256);
  }, 300_000);

  it('serves_the_fine_tuned_checkpoint_through_a_replica_that_registers_itself_streaming_tokens', async () => {
    expect(fineTuned).not.toBe('');
    const prompt = JSON.parse(dataLines('test', 1)[0]!);
    const question = prompt.prompt ?? prompt.messages.at(-1).content;
    const before = await api('POST', '/v1/reason', { model: fineTuned, prompt: question });
    expect(before.status).toBe(503); // known model, no engine yet
    expect((await api('POST', '/v1/reason', { model: `ft:tiny-arith:wk:${jobId}:ckpt-9`, prompt: question })).status).toBe(404);

    start('serve', PYTHON, ['-m', 'softgrpo.serve', '--api', base, '--worker-token', WORKER_TOKEN, '--port', '0', '--cache-dir', join(persist, 'serve-cache')], join(ROOT, 'gpu-worker'));
    await waitFor('the replica to register', async () => (await internal('/replicas')).data.length === 1, 90_000, 500);

    const reason = await api('POST', '/v1/reason', { model: fineTuned, prompt: question, n: 2, seed: 3, max_tokens: 48 });
    expect(reason.status, JSON.stringify(reason.body)).toBe(200);
    expect(reason.body.model).toBe(fineTuned);
    expect(reason.body.choices).toHaveLength(2);

    const chat = { model: fineTuned, messages: [{ role: 'user', content: question }], max_tokens: 32, temperature: 0 };
    const whole = await api('POST', '/v1/chat/completions', chat);
    expect(whole.status, JSON.stringify(whole.body)).toBe(200);
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...chat, stream: true }),
    });
    expect(res.status).toBe(200);
    const chunks = await sseChunks(res);
    const deltas = chunks.map((c) => c.choices?.[0]?.delta ?? {});
    expect(deltas.map((d) => d.content ?? '').join('')).toBe(whole.body.choices[0].message.content);
    expect(deltas.filter((d) => d.content || d.reasoning_content).length).toBeGreaterThan(2); // token by token

    // the replica's heartbeat reports the checkpoint it now holds, under its content key
    const held = await waitFor('a heartbeat holding the checkpoint', async () => (await internal('/replicas')).data[0]?.models.find((m: string) => m.startsWith(`${fineTuned}:ckpt-2@`)), 30_000, 500);
    expect(held).toMatch(/@[0-9a-f]{16}$/);
  }, 240_000);

  it('returns_an_expired_lease_to_the_queue_from_the_scheduled_handler', async () => {
    const created = await api('POST', '/v1/finetune', { model: 'tiny-arith', training_file: trainingFile, method: { type: 'soft_grpo', hyperparameters: { ...SMALL, n_steps: 1 } } });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const claim = await internal('/jobs/claim', { worker_id: 'gone-silent' }); // a worker that then stops heartbeating
    expect(claim.job.id).toBe(created.body.id);
    await new Promise((r) => setTimeout(r, (LEASE_SECONDS + 1) * 1000));
    expect((await fetch(`${base}/__scheduled?cron=*+*+*+*+*`)).status).toBe(200);
    const swept = await waitFor('the sweep', async () => {
      const j = (await api('GET', `/v1/finetune/${created.body.id}`)).body;
      return j.status === 'queued' ? j : null;
    }, 15_000);
    expect(swept.status).toBe('queued');
    const events = (await api('GET', `/v1/finetune/${created.body.id}/events?limit=1`)).body.data;
    expect(events[0].message).toBe('Lease expired on attempt 1; job re-queued to resume from its last checkpoint.');
    await api('POST', `/v1/finetune/${created.body.id}/cancel`);
  }, 60_000);
});
