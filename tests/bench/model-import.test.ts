/**
 * The model import benchmark (bench/model-import.ts) at tiny size, so CI keeps it runnable: a random-weight Qwen2
 * folder from transformers, imported with --int8, decoded by onnxruntime-node fp32 / int8 and PyTorch in one run.
 * Checks the table's shape and that the engines agree, never timings (the Qwen2.5-0.5B run is by hand; its rows are
 * in bench/results-model-import.md).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../../scripts/start-stack';

it('runs_the_tiny_model_import_benchmark_and_writes_its_table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-import-'));
  try {
    const results = join(dir, 'results.md');
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/model-import.ts'), '--shape', 'tiny', '--new-tokens', '4', '--batches', '1', '--results', results], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 32 << 20,
    });
    expect(run.status, run.stderr).toBe(0);
    const text = readFileSync(results, 'utf8');
    const rows = text.split('\n').filter((l) => /^\| (pytorch|onnxruntime)/.test(l));
    expect(rows.map((r) => r.split('|')[1]!.trim())).toEqual(['pytorch-cpu-fp32', 'onnxruntime-node-fp32', 'onnxruntime-node-int8']);
    for (const row of rows) expect(Number(row.split('|')[3])).toBeGreaterThan(0); // tokens/s
    // the float32 export equals PyTorch; int8 is close but not identical
    const fp32 = Number(/ONNX fp32 vs PyTorch max ([\d.e+-]+)/.exec(text)![1]);
    const int8 = Number(/int8 vs PyTorch max ([\d.e+-]+)/.exec(text)![1]);
    expect(fp32).toBeLessThan(1e-4);
    expect(int8).toBeGreaterThan(fp32);
    expect(text).toMatch(/Import: [\d.]+ s wall \(check \+ merge [\d.]+ s, ONNX export [\d.]+ s, int8 quantization [\d.]+ s\), peak RSS \d+ MB/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 600_000);
