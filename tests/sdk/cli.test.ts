/**
 * The `soft-reason` CLI (cli/) against the real app over loopback HTTP: main() in-process for the commands, and the
 * executable entry (tsx cli/soft-reason.ts) once as a child process.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { startSdkServer, TRAIN_JSONL, type SdkServer } from './server';

const ROOT = resolve(__dirname, '../..');
let s: SdkServer;
beforeAll(async () => {
  s = await startSdkServer();
});
afterAll(() => s?.close());

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    env: { SOFT_REASON_API_KEY: s.key, SOFT_REASON_BASE_URL: s.base },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

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

function writeTemp() {
  const path = join(mkdtempSync(join(tmpdir(), 'cli-')), 'data.jsonl');
  writeFileSync(path, TRAIN_JSONL);
  return path;
}
