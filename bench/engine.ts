/**
 * Node engine benchmark, two tables, both appended to bench/results-engine.md:
 *
 * - Concurrency (bench/engine-concurrency.ts): 1, 8, 32 and 64 concurrent n = 1 requests and a mixed-n load on one
 *   engine thread (--pool: more), continuous batching against the unbatched engine in the same run: requests/s, tokens/s, p50/p99
 *   latency, and whether both engines gave the same samples. Targets (issue 14): tokens/s at 32 concurrent at least
 *   4x the unbatched engine's; p99 at 8 concurrent at most 2x the p99 of lone requests (1 concurrent).
 * - Speed: onnxruntime-node soft-thinking decode (src/engine/onnx-engine.ts, generateAlone) against the PyTorch
 *   engine (softgrpo.rollout, gpu-worker/bench/bench_cpu_rollout.py) on the same CPU in the same run, n = 1, 8, 32
 *   samples of one prompt, same request JSON, same intra-op thread count.
 *
 *   npm run bench:engine -- [--model models/tiny] [--repeats 3] [--threads 1] [--max-tokens 64]
 *                           [--sections concurrency,speed] [--loads "1 ,32 "] [--pool 1]
 *                           [--prefill-thread on|off|default]
 *
 * Speed: tokens/s = generated steps summed over the n samples / wall time of the request (prefill included);
 * latency = median wall time of one request.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { appendRows, separatorOf } from './results-engine-file';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OnnxEngine } from '../src/engine/onnx-engine';
import { defaultPrefillThread } from '../src/engine/threaded-engine';
import { measureConcurrency, type ConcurrencyRow } from './engine-concurrency';
import type { GenerationRequest } from '../src/engine/types';

const ROOT = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tiny' },
    repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    'max-tokens': { type: 'string', default: '64' },
    sections: { type: 'string', default: 'concurrency,speed' },
    loads: { type: 'string' }, // only the loads whose names start with one of these (comma-separated)
    pool: { type: 'string', default: '1' }, // engine threads of each engine in the concurrency table
    'prefill-thread': { type: 'string', default: 'default' }, // on | off | default: the batched engine's prefill thread
  },
});
const sections = args.sections!.split(',');
const folder = resolve(ROOT, args.model!);
const repeats = Number(args.repeats);
const threads = Number(args.threads);
const maxTokens = Number(args['max-tokens']);
const SIZES = [1, 8, 32];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function requestFor(n: number): GenerationRequest {
  return {
    messages: [{ role: 'user', content: 'Mia has 7 apples. She buys 3 bags with 4 apples in each bag. How many apples does Mia have now?' }],
    mode: 'soft',
    soft_thinking: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: maxTokens, cold_stop: null },
    answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 },
    max_tokens: maxTokens,
    seed: 2026,
    samples: Array.from({ length: n }, (_, i) => i),
  };
}

interface Measurement {
  n: number;
  latencyMs: number;
  tokensPerS: number;
}

async function measureNode(): Promise<Measurement[]> {
  const engine = await OnnxEngine.load(folder, { modelId: 'bench', intraOpThreads: threads, batching: false });
  const out: Measurement[] = [];
  for (const n of SIZES) {
    await engine.generateAlone(requestFor(n)); // warm-up
    const latency: number[] = [];
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const start = performance.now();
      const result = await engine.generateAlone(requestFor(n));
      const ms = performance.now() - start;
      latency.push(ms);
      rates.push(result.samples.reduce((s, x) => s + x.token_ids.length, 0) / (ms / 1000));
    }
    out.push({ n, latencyMs: median(latency), tokensPerS: median(rates) });
  }
  await engine.release();
  return out;
}

function measureTorch(): Measurement[] {
  const work = mkdtempSync(join(tmpdir(), 'bench-engine-'));
  try {
    writeFileSync(join(work, 'requests.json'), JSON.stringify(SIZES.map(requestFor)));
    const stdout = execFileSync(
      join(ROOT, 'gpu-worker/.venv/bin/python'),
      [join(ROOT, 'gpu-worker/bench/bench_cpu_rollout.py'), folder, join(work, 'requests.json'), '--repeats', String(repeats), '--threads', String(threads)],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    return stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .map((row: { n: number; latency_ms: number[]; tokens: number[] }) => ({
        n: row.n,
        latencyMs: median(row.latency_ms),
        tokensPerS: median(row.tokens.map((t, i) => t / (row.latency_ms[i] / 1000))),
      }));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function versions(): string {
  const ort = JSON.parse(readFileSync(join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version;
  const torch = execFileSync(join(ROOT, 'gpu-worker/.venv/bin/python'), ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim();
  return `node ${process.version}, onnxruntime-node ${ort}, torch ${torch}`;
}

const machine = `${cpus()[0]?.model.trim() ?? 'cpu'} x${cpus().length}`;
const date = () => new Date().toISOString().slice(0, 16).replace('T', ' ') + 'Z';
const load1m = () => loadavg()[0].toFixed(1);

if (sections.includes('concurrency')) {
  const choice = args['prefill-thread'];
  if (!['on', 'off', 'default'].includes(choice!)) throw new Error(`--prefill-thread must be on, off or default, got ${choice}`);
  const prefillThread = choice === 'default' ? defaultPrefillThread(Number(args.pool)) : choice === 'on';
  const rows = await measureConcurrency(folder, maxTokens, args.loads?.split(','), Number(args.pool), prefillThread);
  writeConcurrency(rows, prefillThread);
}
if (sections.includes('speed')) writeSpeed(await measureNode(), measureTorch());

function writeConcurrency(rows: ConcurrencyRow[], prefillThread: boolean): void {
  const header =
    '| load | threads | requests | unbatched req/s | batched req/s | unbatched tokens/s | batched tokens/s | tokens/s ratio | unbatched tokens/CPU-s | batched tokens/CPU-s | CPU ratio | unbatched p50 ms | batched p50 ms | unbatched p99 ms | batched p99 ms | same samples | max tokens | machine | load 1m | date |';
  const lines = rows.map(({ load, unbatched: a, batched: b, identical }) =>
    [
      load.name,
      prefillThread ? `${args.pool} + prefill` : args.pool,
      load.requests,
      a.requestsPerS.toFixed(1),
      b.requestsPerS.toFixed(1),
      a.tokensPerS.toFixed(0),
      b.tokensPerS.toFixed(0),
      (b.tokensPerS / a.tokensPerS).toFixed(2),
      a.tokensPerCpuS.toFixed(0),
      b.tokensPerCpuS.toFixed(0),
      (b.tokensPerCpuS / a.tokensPerCpuS).toFixed(2),
      a.p50Ms.toFixed(0),
      b.p50Ms.toFixed(0),
      a.p99Ms.toFixed(0),
      b.p99Ms.toFixed(0),
      identical ? 'yes' : 'NO',
      maxTokens,
      machine,
      load1m(),
      date(),
    ].join(' | '),
  ).map((line) => `| ${line} |`);
  console.log([header, separatorOf(header), ...lines].join('\n'));
  const lone = rows.find((r) => r.load.clients === 1 && r.load.name.endsWith('n=1'));
  const eight = rows.find((r) => r.load.clients === 8);
  const thirtyTwo = rows.find((r) => r.load.clients === 32);
  if (thirtyTwo) console.log(`target: tokens/s at 32 concurrent >= 4x unbatched: ${(thirtyTwo.batched.tokensPerS / thirtyTwo.unbatched.tokensPerS).toFixed(2)}x`);
  if (lone && eight) console.log(`target: p99 at 8 concurrent <= 2x a lone request's p99: ${(eight.batched.p99Ms / lone.batched.p99Ms).toFixed(2)}x`);
  appendRows(
    'Concurrency',
    [
      'Rows appended by `npm run bench:engine` (bench/engine-concurrency.ts): closed-loop clients on the engine threads',
      '(ThreadedEngine, pool of "threads", one intra-op thread each; "+ prefill": each batched engine thread prefills in a',
      'thread of its own, the unbatched engine does not), continuous batching (batched) against each request decoded alone',
      '(unbatched), the same requests in the same run: prompts of models/tiny/data/test.jsonl (30 to 64 tokens), soft',
      'thinking with Gumbel noise, seed per request. "same samples": both engines answered every request identically.',
      'Each load runs in two halves, alternating the engines. tokens/CPU-s: tokens over the CPU time of the process',
      '(all threads), steadier than wall time when other work shares the machine: its "load 1m" column is the load',
      'average while the rows ran (2 cores).',
    ],
    header,
    lines,
  );
  console.log(`\nappended ${lines.length} rows to bench/results-engine.md (Concurrency)`);
}

function writeSpeed(node: Measurement[], torch: Measurement[]): void {
  const header = '| what | n | torch tokens/s | node tokens/s | tokens/s ratio | torch latency ms | node latency ms | latency ratio | threads | max tokens | versions | machine | load 1m | date |';
  const rows = SIZES.map((n) => {
    const a = torch.find((m) => m.n === n)!;
    const b = node.find((m) => m.n === n)!;
    return `| soft decode, ${args.model} | ${n} | ${a.tokensPerS.toFixed(0)} | ${b.tokensPerS.toFixed(0)} | ${(b.tokensPerS / a.tokensPerS).toFixed(2)} | ${a.latencyMs.toFixed(0)} | ${b.latencyMs.toFixed(0)} | ${(b.latencyMs / a.latencyMs).toFixed(2)} | ${threads} | ${maxTokens} | ${versions()} | ${machine} | ${load1m()} | ${date()} |`;
  });
  console.log([header, separatorOf(header), ...rows].join('\n'));
  appendRows(
    'Speed',
    [
      'Rows appended by `npm run bench:engine`: onnxruntime-node (ours) against the PyTorch engine (softgrpo.rollout, baseline)',
      'on the same CPU in the same run, one prompt, n samples decoded as one batch, soft mode with Gumbel noise, the same',
      'intra-op thread count. Ratios are node / torch (tokens/s above 1 and latency below 1 favour node).',
    ],
    header,
    rows,
  );
  console.log(`\nappended ${rows.length} rows to bench/results-engine.md (Speed)`);
}
