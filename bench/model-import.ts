/**
 * Model import benchmark (issue 17): a random-weight model of a real shape, saved by transformers, imported with
 * `python -m softgrpo.import_model --int8`, then decoded on CPU by onnxruntime-node (float32 export with external
 * data, and the int8 variant) against PyTorch (SoftTokenLM, float32) in the same run, each in its own process.
 *
 *   npm run bench:model-import -- [--shape qwen2.5-0.5b|tiny] [--new-tokens 16] [--prompt-tokens 16] [--threads 2]
 *                                 [--hf <existing HF folder>] [--batches 1,8] [--results bench/results-model-import.md]
 *
 * Per engine and n (1, 8 rows decoding together): decode tokens/s (rows x steps / seconds, prefill excluded; greedy,
 * one token per step, the same prompt and loop in both runtimes), peak resident memory of the process (load +
 * decode), and ratios against PyTorch. The import row has the import's own timings (check + copy, ONNX export,
 * int8 quantization) and its peak memory. Logit error: the last prefill position's logits, int8 and fp32 ONNX
 * against PyTorch (max and mean |diff|, and whether the argmax agrees). Prints a table and appends it to the
 * results file. The CI suite runs only `--shape tiny` (tests/bench/model-import.test.ts); the 0.5B run is by hand.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const PYTHON = process.env.PYTHON ?? join(ROOT, 'gpu-worker/.venv/bin/python');
const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    'new-tokens': { type: 'string', default: '16' },
    'prompt-tokens': { type: 'string', default: '16' },
    threads: { type: 'string', default: '2' },
    batches: { type: 'string', default: '1,8' }, // rows decoding together, one run per value
    hf: { type: 'string' },
    results: { type: 'string', default: 'bench/results-model-import.md' },
    child: { type: 'string' }, // internal: decode with onnxruntime-node in this process
    graph: { type: 'string' },
    batch: { type: 'string' },
    logits: { type: 'string' },
  },
});
const NEW = Number(args['new-tokens']);
const PROMPT = Number(args['prompt-tokens']);
const THREADS = Number(args.threads);

/** Child: load one ONNX graph, prefill + greedy decode, print a JSON line (the same loop as model_import_torch.py). */
async function onnxChild(folder: string, graph: string, batch: number, logitsPath?: string): Promise<void> {
  const ort = await import('onnxruntime-node');
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'));
  const layers: number = config.num_hidden_layers;
  const kv: number = config.num_key_value_heads;
  const hd: number = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  const vocab: number = config.vocab_size;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(join(folder, graph), { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const loadS = (performance.now() - t0) / 1000;
  const i64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
  let past: Record<string, any> = {};
  for (let i = 0; i < layers; i++)
    for (const k of ['key', 'value']) past[`past_key_values.${i}.${k}`] = new ort.Tensor('float32', new Float32Array(0), [batch, kv, 0, hd]);
  const step = async (tokens: number[][], start: number) => {
    const T = tokens[0]!.length;
    const feeds = {
      ids: i64(tokens.flat(), [batch, T, 1]),
      weights: new ort.Tensor('float32', new Float32Array(batch * T).fill(1), [batch, T, 1]),
      attention_mask: i64(new Array(batch * (start + T)).fill(1), [batch, start + T]),
      position_ids: i64(tokens.flatMap(() => Array.from({ length: T }, (_, t) => start + t)), [batch, T]),
      ...past,
    };
    const out = await session.run(feeds);
    // graph version 2: the graph returns the T new keys/values; the cache is kept here, appended along positions
    for (let i = 0; i < layers; i++) {
      for (const k of ['key', 'value']) {
        const name = `past_key_values.${i}.${k}`;
        past[name] = appendPositions(ort, past[name], out[`new.${i}.${k}`]!);
      }
    }
    const logits = out.logits!.data as Float32Array;
    const last = (row: number) => logits.subarray((row * T + T - 1) * vocab, (row * T + T) * vocab);
    return { last, next: Array.from({ length: batch }, (_, r) => argmax(last(r))) };
  };
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % vocab);
  const t1 = performance.now();
  let { last, next } = await step(Array.from({ length: batch }, () => prompt), 0);
  const prefillS = (performance.now() - t1) / 1000;
  if (logitsPath) writeFileSync(logitsPath, JSON.stringify(Array.from(last(0))));
  const t2 = performance.now();
  for (let s = 0; s < NEW; s++) ({ next } = await step(next.map((t) => [t]), PROMPT + s));
  const decodeS = (performance.now() - t2) / 1000;
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ engine: graph, batch, tokens_per_s: (batch * NEW) / decodeS, prefill_s: prefillS, load_s: loadS, peak_rss_mb: peakRssMb }));
}

/** [B, n_kv, P, hd] cache with [B, n_kv, T, hd] new positions appended: [B, n_kv, P+T, hd]. */
function appendPositions(ort: typeof import('onnxruntime-node'), past: any, added: any): any {
  const [B, kv, P, hd] = past.dims as number[];
  const T = (added.dims as number[])[2];
  const rows = B * kv;
  const a = past.data as Float32Array;
  const b = added.data as Float32Array;
  const out = new Float32Array(rows * (P + T) * hd);
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * P * hd, (r + 1) * P * hd), r * (P + T) * hd);
    out.set(b.subarray(r * T * hd, (r + 1) * T * hd), (r * (P + T) + P) * hd);
  }
  return new ort.Tensor('float32', out, [B, kv, P + T, hd]);
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

function lastJson(text: string): any {
  const line = text.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no JSON line in:\n${text}`);
  return JSON.parse(line);
}

function logitError(a: number[], b: number[]) {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length, argmaxAgrees: argmax(a) === argmax(b) };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bench-model-import-'));
  try {
    let hf = args.hf ? resolve(args.hf) : join(work, 'hf');
    if (!args.hf) {
      console.error(`building a random-weight ${args.shape} model with transformers ...`);
      execFileSync(PYTHON, [join(ROOT, 'gpu-worker/tests/hf_fixture.py'), hf, '--shape', args.shape!, '--dtype', 'bfloat16'], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const folder = join(work, 'imported');
    console.error('importing (python -m softgrpo.import_model --int8) ...');
    const t0 = performance.now();
    const imported = spawnSync('/usr/bin/time', ['-f', 'peak_rss_kb=%M', PYTHON, '-m', 'softgrpo.import_model', hf, '--out', folder, '--int8', '--threads', String(THREADS)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (imported.status !== 0) throw new Error(`import failed:\n${imported.stderr}`);
    const importWallS = (performance.now() - t0) / 1000;
    const importInfo = lastJsonBlock(imported.stdout);
    const importRssMb = Number(/peak_rss_kb=(\d+)/.exec(imported.stderr)?.[1] ?? NaN) / 1024;
    const size = (name: string) => (existsSync(join(folder, name)) ? readFileSync(join(folder, name)).length : 0);

    const rows: Array<Record<string, any>> = [];
    const logits: Record<string, number[]> = {};
    for (const batch of args.batches!.split(',').map(Number)) {
      const torchLogits = join(work, `torch-${batch}.json`);
      const torch = spawnSync(PYTHON, [join(ROOT, 'bench/model_import_torch.py'), folder, '--batch', String(batch), '--new-tokens', String(NEW), '--prompt-tokens', String(PROMPT), '--threads', String(THREADS), '--logits', torchLogits], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (torch.status !== 0) throw new Error(`torch decode failed:\n${torch.stderr}`);
      const base = lastJson(torch.stdout);
      rows.push(base);
      if (batch === 1) logits.torch = JSON.parse(readFileSync(torchLogits, 'utf8'));
      for (const graph of ['model.onnx', 'model.int8.onnx']) {
        const out = join(work, `${graph}-${batch}.json`);
        const child = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/model-import.ts'), '--child', folder, '--graph', graph, '--batch', String(batch), '--logits', out, '--new-tokens', String(NEW), '--prompt-tokens', String(PROMPT), '--threads', String(THREADS)], { encoding: 'utf8', maxBuffer: 64 << 20 });
        if (child.status !== 0) throw new Error(`onnxruntime-node decode failed:\n${child.stderr}`);
        const row = lastJson(child.stdout);
        row.engine = graph === 'model.onnx' ? 'onnxruntime-node-fp32' : 'onnxruntime-node-int8';
        row.vs_torch = row.tokens_per_s / base.tokens_per_s;
        rows.push(row);
        if (batch === 1) logits[graph] = JSON.parse(readFileSync(out, 'utf8'));
      }
    }
    const fp32Err = logitError(logits['model.onnx']!, logits.torch!);
    const int8Err = logitError(logits['model.int8.onnx']!, logits.torch!);
    const int8VsFp32 = logitError(logits['model.int8.onnx']!, logits['model.onnx']!);

    const versions = (() => {
      const ort = JSON.parse(readFileSync(join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version;
      const torch = rows.find((r) => r.torch)?.torch;
      return `onnxruntime-node ${ort}, torch ${torch}`;
    })();
    const cpu = `${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores, ${THREADS} threads)`;
    const date = new Date().toISOString().slice(0, 10);
    const params = `${(importInfo.parameters / 1e6).toFixed(1)}M`;
    const lines: string[] = [];
    lines.push(`\n## ${date}: ${args.shape} (${params} parameters, random weights), prompt ${PROMPT} + ${NEW} new tokens, ${cpu}; ${versions}\n`);
    lines.push('| what | n | tokens/s | vs PyTorch | peak RSS MB | load s | prefill s |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const r of rows)
      lines.push(`| ${r.engine} | ${r.batch} | ${r.tokens_per_s.toFixed(2)} | ${r.vs_torch ? `${r.vs_torch.toFixed(2)}x` : 'baseline'} | ${r.peak_rss_mb.toFixed(0)} | ${r.load_s.toFixed(2)} | ${r.prefill_s.toFixed(3)} |`);
    lines.push('');
    const t = importInfo.import_timings;
    lines.push(`Import: ${importWallS.toFixed(1)} s wall (check + merge ${t.check_and_copy_seconds} s, ONNX export ${t.onnx_export_seconds} s, int8 quantization ${t.int8_quantize_seconds} s), peak RSS ${importRssMb.toFixed(0)} MB; ` +
      `model.onnx ${(size('model.onnx') / 1e6).toFixed(1)} MB + model.onnx.data ${(size('model.onnx.data') / 1e6).toFixed(1)} MB, model.int8.onnx ${((size('model.int8.onnx') + size('model.int8.onnx.data')) / 1e6).toFixed(1)} MB.`);
    lines.push(`Logit error at the last prefill position (vocabulary ${logits.torch!.length}): ONNX fp32 vs PyTorch max ${fp32Err.max.toExponential(2)} (mean ${fp32Err.mean.toExponential(2)}); ` +
      `int8 vs PyTorch max ${int8Err.max.toExponential(2)} (mean ${int8Err.mean.toExponential(2)}, argmax ${int8Err.argmaxAgrees ? 'agrees' : 'differs'}); int8 vs fp32 max ${int8VsFp32.max.toExponential(2)} (mean ${int8VsFp32.mean.toExponential(2)}).`);
    const text = lines.join('\n') + '\n';
    console.log(text);
    const results = resolve(ROOT, args.results!);
    if (!existsSync(results))
      writeFileSync(results, '# Model import benchmark (bench/model-import.ts)\n\nRandom-weight models saved by transformers, imported with `python -m softgrpo.import_model --int8`; onnxruntime-node fp32 / int8 against PyTorch CPU fp32 in the same run, each engine in its own process. Tokens/s counts decode steps only (greedy, one token per row per step).\n');
    appendFileSync(results, text);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The import prints a pretty-printed JSON object on stdout. */
function lastJsonBlock(text: string): any {
  return JSON.parse(text.slice(text.indexOf('{')));
}

if (args.child) await onnxChild(args.child, args.graph!, Number(args.batch), args.logits);
else await main();
