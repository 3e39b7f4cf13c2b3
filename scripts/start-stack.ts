/**
 * The embedded default stack (`npm start` runs scripts/start.sh, which installs, then runs this):
 *
 *   1. the Node API (`src/entry/node.ts` as a child process) on 127.0.0.1:PORT (default 8787) with all state in
 *      DATA_DIR (default ./.data): it applies the migrations and registers the bundled models/ (tiny model);
 *   2. the first API key, when DATA_DIR has none: created once and printed once (more: `npm run create-api-key`);
 *   3. a local CPU gpu-worker (`gpu-worker/.venv/bin/python -m softgrpo.worker`) with the worker token, which
 *      runs fine-tuning jobs; it is restarted if it dies (a job it held resumes from its last checkpoint).
 *
 * Ctrl-C (SIGINT) or SIGTERM stops both children (SIGTERM, then SIGKILL after 10 s) and exits; so does the end of
 * the parent process (`kill <npm pid>` does not reach this process through npm's `sh -c`).
 * Run directly: `npx tsx scripts/start-stack.ts` (after scripts/bootstrap.sh). Environment: PORT, DATA_DIR,
 * MODELS_DIR, WORKER_TOKEN (default: generated into DATA_DIR/secrets.json), LEASE_SECONDS, WORKER_DEVICE
 * (default cpu), WORKER_DEVICES (the worker's --devices: 2 takes 2-device jobs and runs them as 2 CPU ranks under
 * torchrun), START_WORKER=0 (API only). The e2e tests import `startStack` to run the same stack.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const PYTHON = join(ROOT, 'gpu-worker/.venv/bin/python');
const TSX_NODE_ARGS = ['--import', 'tsx'];

export interface StackOptions {
  port: number;
  dataDir: string;
  modelsDir?: string;
  /** Extra environment of both children (e.g. LEASE_SECONDS, SWEEP_SECONDS, ENGINE_MODELS). */
  env?: Record<string, string>;
  /** Start the local worker (default true). */
  worker?: boolean;
  /** Extra worker arguments (e.g. ['--poll-seconds', '0.5']). */
  workerArgs?: string[];
  /** Restart the worker when it exits on its own (default false; the CLI turns it on). */
  restartWorker?: boolean;
  /** Where child output lines go (default: this process's stdout / stderr). */
  log?: (line: string) => void;
}

export interface Stack {
  url: string;
  /** The key created at this start (null when DATA_DIR already had one). */
  createdApiKey: string | null;
  workerToken: string;
  api: ChildProcess;
  worker: ChildProcess | null;
  /** Start a(nother) worker process; it becomes `stack.worker`. */
  startWorker(): ChildProcess;
  stop(): Promise<void>;
}

function pipeLines(child: ChildProcess, prefix: string, log: (line: string) => void) {
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) log(`${prefix}${line}`);
    });
  }
}

function waitForOutput(child: ChildProcess, needle: string, timeoutMs: number): Promise<void> {
  return new Promise((resolveWait, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${needle}": ${seen.slice(-2000)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(needle)) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolveWait();
      }
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before "${needle}": ${seen.slice(-2000)}`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function terminate(child: ChildProcess | null, graceMs = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}

function countApiKeys(dataDir: string): number {
  const db = new BetterSqlite3(join(dataDir, 'api.sqlite'), { readonly: true });
  try {
    return (db.prepare('select count(*) as n from api_keys').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    PORT: String(opts.port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    ...(opts.modelsDir ? { MODELS_DIR: resolve(opts.modelsDir) } : {}),
  };
  const url = `http://127.0.0.1:${opts.port}`;

  const api = spawn(process.execPath, [...TSX_NODE_ARGS, 'src/entry/node.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  pipeLines(api, '[api] ', log);
  try {
    await waitForOutput(api, 'API listening', 120_000);
  } catch (err) {
    await terminate(api);
    throw err;
  }

  const workerToken = env.WORKER_TOKEN || (JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { workerToken: string }).workerToken;
  let createdApiKey: string | null = null;
  if (countApiKeys(dataDir) === 0) {
    const { stdout } = await promisify(execFile)(process.execPath, [...TSX_NODE_ARGS, 'scripts/create-api-key.ts', '--tenant', 'default', '--name', 'first key'], {
      cwd: ROOT,
      env,
    });
    createdApiKey = stdout.trim();
  }

  let stopping = false;
  const stack: Stack = {
    url,
    createdApiKey,
    workerToken,
    api,
    worker: null,
    startWorker() {
      if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/bootstrap.sh (uv sync) first`);
      const args = ['-m', 'softgrpo.worker', '--api', url, '--work-dir', join(dataDir, 'worker'), '--device', env.WORKER_DEVICE ?? 'cpu', ...(env.WORKER_DEVICES ? ['--devices', env.WORKER_DEVICES] : []), ...(opts.workerArgs ?? [])];
      // the token goes through the environment, not argv (argv is visible to every user in `ps`)
      const child = spawn(PYTHON, args, { cwd: join(ROOT, 'gpu-worker'), env: { ...env, WORKER_TOKEN: workerToken, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      pipeLines(child, '', log);
      child.on('exit', (code, signal) => {
        if (stopping || stack.worker !== child) return;
        log(`[stack] worker exited (${signal ?? code})${opts.restartWorker ? '; restarting in 3 s' : ''}`);
        if (opts.restartWorker) setTimeout(() => !stopping && stack.worker === child && stack.startWorker(), 3000);
      });
      stack.worker = child;
      return child;
    },
    async stop() {
      stopping = true;
      await Promise.all([terminate(stack.worker), terminate(api)]);
    },
  };
  api.on('exit', (code, signal) => {
    if (!stopping) log(`[stack] API exited (${signal ?? code})`);
  });
  if (opts.worker ?? true) stack.startWorker();
  return stack;
}

async function main() {
  const port = Number(process.env.PORT ?? 8787);
  const dataDir = process.env.DATA_DIR ?? join(ROOT, '.data');
  const stack = await startStack({
    port,
    dataDir,
    modelsDir: process.env.MODELS_DIR,
    worker: process.env.START_WORKER !== '0',
    restartWorker: true,
  });
  const lines = [
    '',
    `Soft-thinking reasoning API on ${stack.url}  (DATA_DIR=${resolve(dataDir)})`,
    stack.createdApiKey
      ? `First API key (shown only now; keep it):\n\n    export KEY=${stack.createdApiKey}\n`
      : 'API keys: DATA_DIR already has one; create another with `npm run create-api-key`.',
    `API reference: ${stack.url}/docs    Local worker: ${stack.worker ? 'running (CPU)' : 'off'}    Ctrl-C stops everything.`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');

  let exiting = false;
  const shutdown = async (code: number) => {
    if (exiting) return;
    exiting = true;
    process.stdout.write('\n[stack] stopping...\n');
    await stack.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  stack.api.on('exit', () => void shutdown(1));
  // `kill <npm pid>` ends npm and its `sh -c` without passing the signal on: when our parent goes away, stop too
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && void shutdown(0), 1000).unref();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
