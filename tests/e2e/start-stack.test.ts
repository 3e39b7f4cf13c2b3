/**
 * The `npm start` stack as a process (scripts/start-stack.ts, what scripts/start.sh runs after installing): it prints
 * the first API key once, serves the bundled model, runs a worker, and Ctrl-C (SIGINT) leaves no process behind.
 *
 *   npx vitest run tests/e2e/start-stack.test.ts
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/start-stack';
import { freePort, waitFor } from './stack';

const dataDir = mkdtempSync(join(tmpdir(), 'e2e-start-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const childPids = (pid: number) =>
  execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map(Number).filter(Boolean);

async function start(port: number): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-stack.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await waitFor('the stack banner', async () => out.includes('Ctrl-C stops everything'), 120_000);
  return { proc, out: () => out };
}

describe('npm start stack', () => {
  it('prints_the_first_key_once_serves_and_stops_every_process_on_ctrl_c', async () => {
    const port = await freePort();
    const first = await start(port);
    const key = /export KEY=(\S+)/.exec(first.out())?.[1];
    expect(key).toMatch(/^sk-/);
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as any;
    expect(models.data.map((m: any) => m.id)).toContain('tiny-arith');
    await waitFor('the worker to poll', async () => first.out().includes('polling'), 120_000);
    const children = childPids(first.proc.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2); // the API and the worker

    first.proc.kill('SIGINT');
    const code = await new Promise((r) => first.proc.once('exit', r));
    expect(code).toBe(0);
    await waitFor('children to exit', async () => children.every((pid) => !alive(pid)), 15_000);

    // a second start on the same DATA_DIR keeps the key and prints no new one
    const second = await start(await freePort());
    try {
      expect(second.out()).not.toMatch(/export KEY=/);
      expect(second.out()).toContain('already has one');
    } finally {
      second.proc.kill('SIGINT');
      await new Promise((r) => second.proc.once('exit', r));
    }
  }, 300_000);
});
