/**
 * Event-loop delay of the API process while concurrent /v1/reason requests decode: the ONNX engine on the API
 * thread against the engine in worker threads (src/engine/threaded-engine.ts), in the same run.
 *
 *   npm run bench:event-loop
 *   BENCH_CONCURRENCY=32 BENCH_N=4 BENCH_MAX_TOKENS=128 npm run bench:event-loop
 *
 * For each engine it starts the real Node server (`src/entry/node.ts`) with a temporary DATA_DIR and the bundled
 * tiny model configured through ENGINE_MODELS (`"pool_size": 0` = on the API thread; default pool = threads),
 * preloading bench/event-loop-probe.ts, which records the API thread's event-loop delay (node:perf_hooks
 * monitorEventLoopDelay) and reports it over IPC. After a warm-up (engine loaded, pool threads started) it resets
 * the histogram, sends BENCH_CONCURRENCY /v1/reason requests at once, and meanwhile times /healthz round trips one
 * after another, 20 ms apart (what another tenant's cheap request sees). Tenant limits are raised out of the way.
 * Sampling is hot (temperature 3, no top-k) so that the tiny model's samples run towards max_tokens, as a larger
 * model's reasoning would; with its trained defaults it stops after about 18 tokens.
 *
 * Prints a table and adds its rows to its own section of bench/results-api.md (created when missing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { EventLoopReport } from './event-loop-probe';
import { createApiKey, freePort, ROOT, waitForServer } from './local-server';

const RESULTS = process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'results-api.md'); // another file for trial runs
const PROBE = pathToFileURL(join(ROOT, 'bench', 'event-loop-probe.ts')).href;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const N = Number(process.env.BENCH_N ?? 4);
const MAX_TOKENS = Number(process.env.BENCH_MAX_TOKENS ?? 128);
const PROBE_GAP_MS = 20;
const MODEL = 'tiny-arith';
const HOT = { temperature: 3, top_k: 0, top_p: 1 };
const REQUEST = {
  model: MODEL,
  prompt: 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?',
  n: N,
  max_tokens: MAX_TOKENS,
  ...HOT,
  soft_thinking: { ...HOT, max_thinking_tokens: MAX_TOKENS },
};

interface Engine {
  name: string;
  poolSize: number | undefined; // ENGINE_MODELS pool_size; undefined: the default pool
}
const ENGINES: Engine[] = [
  { name: 'in-process (API thread)', poolSize: 0 },
  { name: `worker threads (pool ${Math.min(2, availableParallelism())})`, poolSize: undefined },
];

interface Row {
  engine: string;
  wallS: number;
  tokensPerS: number;
  loop: EventLoopReport;
  healthP50: number;
  healthP99: number;
  healthChecks: number;
  errors: number;
}

/** Sends `message` over the IPC channel and resolves with the child's answer. */
function ask<T>(child: ChildProcess, message: string): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (answer) => resolve(answer as T));
    child.send(message);
  });
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

async function measure(engine: Engine): Promise<Row> {
  const tmp = mkdtempSync(join(tmpdir(), 'bench-event-loop-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const model = { engine: 'onnx', folder: join(ROOT, 'models', 'tiny'), ...(engine.poolSize === undefined ? {} : { pool_size: engine.poolSize }) };
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: join(tmp, 'data'),
    MODELS_DIR: join(ROOT, 'models'),
    ENGINE_MODELS: JSON.stringify({ [MODEL]: model }),
    NODE_ENV: 'production',
    TENANT_REQUESTS_PER_MINUTE: '100000000',
    TENANT_CONCURRENT_SAMPLES: '100000000',
    TENANT_ACTIVE_JOBS: '100000000',
  };
  let logs = '';
  const server = spawn(process.execPath, ['--import', 'tsx', '--import', PROBE, 'src/entry/node.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  server.stdout!.on('data', (d) => (logs += d));
  server.stderr!.on('data', (d) => (logs += d));
  try {
    await waitForServer(base, server, () => logs);
    const headers = { authorization: `Bearer ${createApiKey(env)}`, 'content-type': 'application/json' };
    const reason = (body: object) => fetch(`${base}/v1/reason`, { method: 'POST', headers, body: JSON.stringify(body) });
    // warm-up: the engine loaded and, for the pool, every thread started
    const warm = await Promise.all([1, 2, 3, 4].map(() => reason({ ...REQUEST, n: 1, max_tokens: 4, soft_thinking: { max_thinking_tokens: 4 } })));
    if (warm.some((r) => !r.ok)) throw new Error(`warm-up failed: ${warm.map((r) => r.status).join(', ')}\n${logs}`);

    await ask(server, 'reset');
    const started = performance.now();
    let running = true;
    const responses = Promise.all(
      Array.from({ length: CONCURRENCY }, (_, i) =>
        reason({ ...REQUEST, seed: i }).then(async (r) => ({ ok: r.ok, body: (await r.json()) as any })),
      ),
    ).finally(() => (running = false));
    const health: number[] = [];
    while (running) {
      const sent = performance.now();
      await fetch(`${base}/healthz`).then((r) => r.arrayBuffer());
      health.push(performance.now() - sent);
      await new Promise((r) => setTimeout(r, PROBE_GAP_MS)); // paced, so probing takes little CPU from decoding
    }
    const results = await responses;
    const wallS = (performance.now() - started) / 1000;
    const loop = await ask<EventLoopReport>(server, 'report');
    const tokens = results.reduce((sum, r) => sum + (r.ok ? r.body.usage.completion_tokens : 0), 0);
    return {
      engine: engine.name,
      wallS,
      tokensPerS: tokens / wallS,
      loop,
      healthP50: percentile(health, 50),
      healthP99: percentile(health, 99),
      healthChecks: health.length,
      errors: results.filter((r) => !r.ok).length,
    };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * This benchmark's section of bench/results-api.md: added after the file's title when missing (so rows that other
 * benchmarks append at the end of the file stay out of it), then rows go at the end of the section's table.
 */
function addRows(section: string, intro: string, header: string, rows: string[]): void {
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# API benchmarks\n';
  const heading = `## ${section}`;
  const separator = header.replace(/[^|]+/g, ' --- ');
  let lines = text.split('\n');
  if (!lines.includes(heading)) {
    const titleEnd = lines[0]!.startsWith('# ') ? 1 : 0;
    lines = [...lines.slice(0, titleEnd), '', heading, '', intro, '', header, separator, ...lines.slice(titleEnd)];
  }
  const tableStart = lines.indexOf(header, lines.indexOf(heading));
  let end = tableStart;
  while (end + 1 < lines.length && lines[end + 1]!.startsWith('|')) end++;
  lines.splice(end + 1, 0, ...rows);
  writeFileSync(RESULTS, lines.join('\n').replace(/\n{3,}/g, '\n\n'));
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const engine of ENGINES) rows.push(await measure(engine));

  const load = loadavg()[0]!.toFixed(1);
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const machine = `${cpus()[0]?.model?.trim() ?? 'unknown cpu'} x${cpus().length}`;
  const baseline = rows[0]!;
  const cells = (r: Row) => [
    r.engine,
    `${CONCURRENCY} x n=${N}, max_tokens ${MAX_TOKENS}`,
    r.wallS.toFixed(1),
    r.tokensPerS.toFixed(0),
    r.loop.p50.toFixed(1),
    r.loop.p99.toFixed(1),
    r.loop.max.toFixed(1),
    (baseline.loop.p99 / r.loop.p99).toFixed(1),
    String(r.healthChecks),
    r.healthP50.toFixed(1),
    r.healthP99.toFixed(1),
    String(r.errors),
    process.version,
    date,
    machine,
    load,
  ];
  const header = [
    'engine', 'load', 'wall s', 'tokens/s', 'loop delay p50 ms', 'loop delay p99 ms', 'loop delay max ms',
    'p99 in-process / this', '/healthz probes', '/healthz p50 ms', '/healthz p99 ms', 'errors', 'node', 'date', 'machine', 'load 1m',
  ];
  const md = (c: string[]) => `| ${c.join(' | ')} |`;
  console.log([md(header), md(header.map(() => '---')), ...rows.map((r) => md(cells(r)))].join('\n'));

  addRows(
    'Event-loop delay under concurrent /v1/reason (bench/event-loop.ts)',
    'Rows added by `npm run bench:event-loop`: the API process (src/entry/node.ts) serving the bundled tiny model, ' +
      'its event-loop delay (monitorEventLoopDelay, 2 ms resolution, so an idle loop reads about 2 ms) while the ' +
      'concurrent /v1/reason requests of the "load" column decode (hot sampling, temperature 3), with the ONNX engine ' +
      'on the API thread and in worker threads, one after the other in the same run. /healthz: round trips sent one ' +
      'after another, 20 ms apart, by the benchmark meanwhile. Wall time and tokens/s swing with other load on the ' +
      'machine (the "load 1m" column): the engines do the same work, the event-loop columns are the point.',
    md(header),
    rows.map((r) => md(cells(r))),
  );
  if (rows.some((r) => r.errors > 0)) {
    console.error('some /v1/reason requests failed');
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
