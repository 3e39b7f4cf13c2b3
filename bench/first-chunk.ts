/**
 * First-chunk latency of a streamed chat completion: the Workers deployment (wrangler dev: workerd, local D1/R2)
 * with a self-registered `softgrpo.serve` replica, against the Node API's in-process ONNX engine as the baseline,
 * and the Node API with the same kind of replica, all in one run on the bundled tiny model.
 *
 * Per setup: 2 warm-up requests (the replica downloads and loads the model on the first), then BENCH_REQUESTS
 * (default 10) streamed `POST /v1/chat/completions` one after another, each timed to its response headers, to its
 * first SSE chunk with text (reasoning or answer) and to its last chunk. Token-level streaming shows as a first
 * chunk far ahead of the last; a remote engine that answers whole shows them together. Prints a table and appends
 * its rows to bench/results-streaming.md.
 *
 *   npm run bench:first-chunk            (BENCH_REQUESTS=20 for more; BENCH_MAX_TOKENS, default 64)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiKey, freePort, ROOT, waitForServer } from './local-server';

const RESULTS = join(ROOT, 'bench', 'results-streaming.md');
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10);
const MAX_TOKENS = Number(process.env.BENCH_MAX_TOKENS ?? 64);
const PYTHON = join(ROOT, 'gpu-worker/.venv/bin/python');
const WORKER_TOKEN = 'wt-bench-first-chunk';
const QUESTION = 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?';
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', OMP_NUM_THREADS: '1' };
const children: ChildProcess[] = [];
const logs: string[] = [];

function start(command: string, args: string[], extraEnv: Record<string, string> = {}, cwd = ROOT): ChildProcess {
  const child = spawn(command, args, { cwd, env: { ...env, ...extraEnv }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => logs.push(String(d)));
  child.stderr!.on('data', (d) => logs.push(String(d)));
  children.push(child);
  return child;
}
function stop(child: ChildProcess) {
  if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
}

async function until(what: string, probe: () => Promise<boolean>, ms = 90_000) {
  const end = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${logs.slice(-30).join('')}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

interface Timing {
  headers: number;
  first: number;
  last: number;
  chunks: number;
}

async function streamedChat(base: string, key: string): Promise<Timing> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-arith', messages: [{ role: 'user', content: QUESTION }], stream: true, max_tokens: MAX_TOKENS, temperature: 0 }),
  });
  const headers = performance.now() - t0;
  if (res.status !== 200) throw new Error(`chat answered ${res.status}: ${await res.text()}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  let first = 0;
  let last = 0;
  let chunks = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    let at: number;
    while ((at = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, at);
      buffered = buffered.slice(at + 2);
      const data = event.split('\n').find((l) => l.startsWith('data: '))?.slice(6);
      if (!data || data === '[DONE]') continue;
      const delta = JSON.parse(data).choices?.[0]?.delta ?? {};
      if (delta.content || delta.reasoning_content) {
        chunks++;
        last = performance.now() - t0;
        if (!first) first = last;
      }
    }
  }
  return { headers, first, last, chunks };
}

const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function measure(base: string, key: string): Promise<Timing[]> {
  for (let i = 0; i < 2; i++) await streamedChat(base, key);
  const out: Timing[] = [];
  for (let i = 0; i < REQUESTS; i++) out.push(await streamedChat(base, key));
  return out;
}

async function startReplica(api: string): Promise<ChildProcess> {
  const replica = start(PYTHON, ['-m', 'softgrpo.serve', '--api', api, '--worker-token', WORKER_TOKEN, '--port', '0'], {}, join(ROOT, 'gpu-worker'));
  await until('the replica to register', async () => {
    const res = await fetch(`${api}/internal/replicas`, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } });
    return ((await res.json()) as { data: unknown[] }).data.length > 0;
  });
  return replica;
}

async function main() {
  const results: { setup: string; timings: Timing[] }[] = [];
  const dirs: string[] = [];
  try {
    // Node API: the baseline (in-process ONNX engine, worker threads), then the same API with a replica registered
    const dataDir = mkdtempSync(join(tmpdir(), 'bench-first-chunk-node-'));
    dirs.push(dataDir);
    const nodePort = await freePort();
    const nodeBase = `http://127.0.0.1:${nodePort}`;
    const nodeEnv = { DATA_DIR: dataDir, PORT: String(nodePort), WORKER_TOKEN };
    const node = start(process.execPath, ['--import', 'tsx', 'src/entry/node.ts'], nodeEnv);
    await waitForServer(nodeBase, node, () => logs.join(''));
    const nodeKey = createApiKey({ ...env, ...nodeEnv });
    results.push({ setup: 'Node API, onnxruntime-node in process (baseline)', timings: await measure(nodeBase, nodeKey) });
    const nodeReplica = await startReplica(nodeBase);
    results.push({ setup: 'Node API + serve replica', timings: await measure(nodeBase, nodeKey) });
    stop(nodeReplica);

    // Workers: wrangler dev with local D1 and R2, set up by the documented commands, plus a replica
    const persist = mkdtempSync(join(tmpdir(), 'bench-first-chunk-workers-'));
    dirs.push(persist);
    const tsx = (args: string[]) => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${args.join(' ')}: ${run.stderr}`);
      return run.stdout.trim();
    };
    const workersKey = tsx(['scripts/create-api-key.ts', '--d1', 'local', '--persist-to', persist]);
    tsx(['scripts/upload-model.ts', 'models/tiny', '--persist-to', persist]);
    const port = await freePort();
    const workersBase = `http://127.0.0.1:${port}`;
    start(process.execPath, [
      join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
      '--var', `WORKER_TOKEN:${WORKER_TOKEN}`, '--var', 'SIGNING_SECRET:bench-first-chunk-signing-secret',
    ]);
    await until('wrangler dev', async () => (await fetch(`${workersBase}/healthz`)).ok);
    await startReplica(workersBase);
    results.push({ setup: 'Workers (wrangler dev) + serve replica', timings: await measure(workersBase, workersKey) });
  } finally {
    children.forEach((c) => {
      try {
        stop(c);
      } catch {
        /* gone */
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  }

  const baseline = pct(results[0]!.timings.map((t) => t.first), 0.5);
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const machine = `${cpus()[0]?.model.split(' ').slice(0, 2).join(' ')} x${cpus().length}`;
  const header = '| setup | requests | max_tokens | headers p50 ms | first chunk p50 ms | first chunk p90 ms | last chunk p50 ms | text chunks p50 | first chunk vs Node | node | date | machine | load 1m |';
  const rows = results.map(({ setup, timings }) => {
    const first = pct(timings.map((t) => t.first), 0.5);
    return `| ${setup} | ${timings.length} | ${MAX_TOKENS} | ${pct(timings.map((t) => t.headers), 0.5).toFixed(1)} | ${first.toFixed(1)} | ${pct(timings.map((t) => t.first), 0.9).toFixed(1)} | ${pct(timings.map((t) => t.last), 0.5).toFixed(1)} | ${pct(timings.map((t) => t.chunks), 0.5)} | ${(first / baseline).toFixed(2)} | ${process.version} | ${date} | ${machine} | ${loadavg()[0]!.toFixed(1)} |`;
  });
  console.log([header, header.replace(/[^|]+/g, ' --- '), ...rows].join('\n'));
  if (!existsSync(RESULTS)) {
    writeFileSync(
      RESULTS,
      [
        '# Streaming first-chunk latency (bench/first-chunk.ts)',
        '',
        'Rows appended by `npm run bench:first-chunk`: one streamed chat completion at a time on the bundled tiny model (temperature 0),',
        'timed to the response headers, the first SSE chunk with text and the last one. Baseline: the Node API with its in-process ONNX',
        'engine, measured in the same run as the Workers deployment (wrangler dev, local workerd/D1/R2) and the Node API with a',
        'self-registered `softgrpo.serve` replica (CPU, plain engine). "first chunk vs Node" is the ratio of p50s.',
        '',
        header,
        header.replace(/[^|]+/g, ' --- '),
        '',
      ].join('\n'),
    );
  }
  appendFileSync(RESULTS, rows.join('\n') + '\n');
}

main().catch((err) => {
  console.error(err);
  children.forEach((c) => {
    try {
      stop(c);
    } catch {
      /* gone */
    }
  });
  process.exit(1);
});
