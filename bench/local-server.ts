/** What the benchmarks that start the real Node server share: a free loopback port, waiting for /healthz, an API key. */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function waitForServer(base: string, child: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${logs()}`);
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not answer /healthz within 60 s:\n${logs()}`);
}

/** Runs scripts/create-api-key.ts against the env's DATA_DIR and returns the key it prints (its last token). */
export function createApiKey(env: NodeJS.ProcessEnv): string {
  const out = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/create-api-key.ts'], { cwd: ROOT, env, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`create-api-key failed (${out.status}):\n${out.stdout}\n${out.stderr}`);
  const tokens = out.stdout.trim().split(/\s+/);
  const key = tokens[tokens.length - 1];
  if (!key) throw new Error(`create-api-key printed no key:\n${out.stdout}`);
  return key;
}
