/**
 * The Node start command as a user runs it: `tsx src/entry/node.ts` with PORT and DATA_DIR, the key script
 * `scripts/create-api-key.ts`, state kept in DATA_DIR (SQLite, blobs, generated secrets) across restarts.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const tsx = join(root, 'node_modules/.bin/tsx');
let dir: string;
let env: NodeJS.ProcessEnv;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

async function start(extra: NodeJS.ProcessEnv = {}): Promise<{ proc: ChildProcess; base: string }> {
  const port = await freePort();
  const proc = spawn(tsx, ['src/entry/node.ts'], { cwd: root, env: { ...env, ...extra, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('API listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  return { proc, base: `http://127.0.0.1:${port}` };
}

const stop = (proc: ChildProcess) =>
  new Promise<void>((resolve) => {
    proc.removeAllListeners('exit');
    proc.on('exit', () => resolve());
    proc.kill('SIGTERM');
  });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'node-entry-'));
  const models = join(dir, 'models', 'tiny');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'manifest.json'), JSON.stringify({ format: 'softgrpo-model/1', base: 'tiny-arith', step: 0 }));
  writeFileSync(join(models, 'config.json'), '{}');
  env = { ...process.env, DATA_DIR: join(dir, 'data'), MODELS_DIR: join(dir, 'models'), WORKER_TOKEN: '', SIGNING_SECRET: '' };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('node entry', () => {
  it('starts_on_PORT_keeps_state_in_DATA_DIR_and_serves_keys_made_by_the_script', async () => {
    const key = execFileSync(tsx, ['scripts/create-api-key.ts', '--tenant', 'acme'], { cwd: root, env, encoding: 'utf8' }).trim();
    expect(key).toMatch(/^sk-/);
    let { proc, base } = await start();
    try {
      expect(existsSync(join(dir, 'data', 'api.sqlite'))).toBe(true);
      const secrets = JSON.parse(readFileSync(join(dir, 'data', 'secrets.json'), 'utf8'));
      expect(secrets.workerToken).toMatch(/^wt-/);
      const models = (await (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as any;
      expect(models.data.map((m: any) => m.id)).toEqual(['tiny-arith']);
      const form = new FormData();
      form.append('purpose', 'fine-tune');
      form.append('file', new Blob(['{"prompt":"1+1","answer":2}\n']), 'a.jsonl');
      const file = (await (await fetch(`${base}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form })).json()) as any;
      expect(file.examples).toBe(1);
      // The worker token generated at first start authenticates /internal.
      const claim = await fetch(`${base}/internal/jobs/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secrets.workerToken}`, 'content-type': 'application/json' },
        body: '{"worker_id":"w"}',
      });
      expect(claim.status).toBe(204);
      await stop(proc);
      // Restart: same secrets, same data.
      ({ proc, base } = await start());
      expect(JSON.parse(readFileSync(join(dir, 'data', 'secrets.json'), 'utf8'))).toEqual(secrets);
      const again = (await (await fetch(`${base}/v1/files/${file.id}/content`, { headers: { authorization: `Bearer ${key}` } })).text());
      expect(again).toBe('{"prompt":"1+1","answer":2}\n');
    } finally {
      await stop(proc);
    }
  }, 90_000);
});

describe('two API processes on one DATA_DIR', () => {
  it('never_hand_the_same_job_to_two_workers_claiming_through_different_processes', async () => {
    const key = execFileSync(tsx, ['scripts/create-api-key.ts'], { cwd: root, env, encoding: 'utf8' }).trim();
    const shared = { WORKER_TOKEN: 'wt-shared-token', SIGNING_SECRET: 'shared-secret' };
    const a = await start(shared);
    const b = await start(shared);
    try {
      const auth = { authorization: `Bearer ${key}` };
      const form = new FormData();
      form.append('purpose', 'fine-tune');
      form.append('file', new Blob(['{"prompt":"1+1","answer":2}\n']), 'a.jsonl');
      const file = (await (await fetch(`${a.base}/v1/files`, { method: 'POST', headers: auth, body: form })).json()) as any;
      const jobs = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${i % 2 ? a.base : b.base}/v1/finetune`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'tiny-arith', training_file: file.id }),
        });
        jobs.add(((await res.json()) as any).id);
      }
      const claims = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          fetch(`${i % 2 ? a.base : b.base}/internal/jobs/claim`, {
            method: 'POST',
            headers: { authorization: `Bearer ${shared.WORKER_TOKEN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ worker_id: `w${i}` }),
          }).then(async (r) => (r.status === 200 ? ((await r.json()) as any).job.id : r.status)),
        ),
      );
      const claimed = claims.filter((c) => typeof c === 'string');
      expect(claims.filter((c) => typeof c !== 'string').every((c) => c === 204)).toBe(true);
      expect(claimed).toHaveLength(10);
      expect(new Set(claimed)).toEqual(jobs);
    } finally {
      await stop(a.proc);
      await stop(b.proc);
    }
  }, 120_000);
});
