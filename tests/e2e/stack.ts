/**
 * Helpers of the end-to-end tests: the real `npm start` stack (scripts/start-stack.ts: API child process + Python
 * worker process) on a temp DATA_DIR and a free port, a user client over real HTTP, the job event stream (SSE), and
 * a read-only look at the stored worker events (the public event objects do not show sequence numbers).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { createParser } from 'eventsource-parser';
import { ROOT, startStack, type Stack } from '../../scripts/start-stack';

/** The models folder the stack serves (E2E_MODELS_DIR runs the same tests against another model folder). */
export const MODELS_DIR = process.env.E2E_MODELS_DIR ?? join(ROOT, 'models');

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

export interface E2E {
  stack: Stack;
  dataDir: string;
  key: string;
  output: string[];
  api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  upload(lines: string[], name?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startE2E(env: Record<string, string> = {}, modelsDir = MODELS_DIR): Promise<E2E> {
  const dataDir = mkdtempSync(join(tmpdir(), 'e2e-stack-'));
  const output: string[] = [];
  const stack = await startStack({
    port: await freePort(),
    dataDir,
    modelsDir,
    env,
    workerArgs: ['--poll-seconds', '0.5'],
    log: (line) => {
      output.push(line);
      if (process.env.E2E_VERBOSE) console.log(line);
    },
  });
  if (!stack.createdApiKey) throw new Error('a fresh DATA_DIR must get its first API key');
  const key = stack.createdApiKey;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return {
    stack,
    dataDir,
    key,
    output,
    api,
    async upload(lines, name = 'train.jsonl') {
      const form = new FormData();
      form.append('purpose', 'fine-tune');
      form.append('file', new Blob([lines.join('\n') + '\n']), name);
      const res = await fetch(`${stack.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
      const body = (await res.json()) as any;
      if (res.status !== 200 && res.status !== 201) throw new Error(`upload failed: ${JSON.stringify(body)}`);
      return body.id as string;
    },
    async close() {
      await stack.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The first `n` lines of a JSONL file of the bundled model's data splits. */
export function dataLines(split: 'train' | 'validation' | 'test', n: number): string[] {
  const text = readFileSync(join(MODELS_DIR, 'tiny', 'data', `${split}.jsonl`), 'utf8');
  return text.split('\n').filter((l) => l.trim()).slice(0, n);
}

/** Follows `GET /v1/finetune/{id}/events?stream=true` until the `done` event; returns every event object seen. */
export async function watchUntilDone(e2e: E2E, jobId: string, timeoutMs: number): Promise<{ status: string; events: any[] }> {
  const events: any[] = [];
  let status = '';
  let after = '';
  const deadline = Date.now() + timeoutMs;
  while (!status && Date.now() < deadline) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), Math.max(1, deadline - Date.now()));
    try {
      const res = await fetch(`${e2e.stack.url}/v1/finetune/${jobId}/events?stream=true${after ? `&after=${after}` : ''}`, {
        headers: { authorization: `Bearer ${e2e.key}` },
        signal: controller.signal,
      });
      const parser = createParser({
        onEvent(ev) {
          if (ev.event === 'done') status = JSON.parse(ev.data).status;
          else if (ev.event === 'event') {
            events.push(JSON.parse(ev.data));
            after = ev.id ?? after;
          }
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
    }
  }
  if (!status) throw new Error(`job ${jobId} did not finish in ${timeoutMs} ms; events: ${JSON.stringify(events.slice(-5))}`);
  return { status, events };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The worker's stored events of a job in sequence order (read-only look at the SQLite file). */
export function storedWorkerEvents(dataDir: string, jobId: string): { seq: number; type: string; data: any }[] {
  const db = new BetterSqlite3(join(dataDir, 'api.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('select seq, type, data from job_events where job_id = ? and seq is not null order by seq')
      .all(jobId) as { seq: number; type: string; data: string | null }[];
    return rows.map((r) => ({ seq: r.seq, type: r.type, data: r.data ? JSON.parse(r.data) : null }));
  } finally {
    db.close();
  }
}

export const metricSteps = (events: { type: string; data: any }[]) => events.filter((e) => e.type === 'metrics').map((e) => e.data.step as number);
