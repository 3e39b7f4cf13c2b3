/**
 * Held-out accuracy of the Node engine on models/tiny/data/test.jsonl: soft vs discrete mode, greedy (noise off,
 * temperature 0: one deterministic sample), Pass@1 (mean
 * accuracy over the n samples), majority@n (the vote of /v1/reason), pass@n (any of the n samples correct), and
 * adaptive voting (batches of `--batch`, stopping once the leader cannot be overtaken): its accuracy and the share
 * of samples it saves. Same code path as the API (src/reasoning/sampling-run.ts), sampling settings are the
 * API defaults (SofT-GRPO rollout settings). Prints a table and appends it to bench/results-engine.md.
 *
 *   npx tsx bench/eval-reason.ts [--model models/tiny] [--limit 100] [--n 8] [--batch 2] [--max-tokens 96] [--seed 1]
 *
 * Grading: the last \boxed{} of the answer, normalised as vote normalize "math", equals the normalised reference.
 * Departs from the paper: 8 samples instead of 32 and a toy arithmetic set, to run on a CPU in minutes.
 */
import { readFileSync } from 'node:fs';
import { appendRows, separatorOf } from './results-engine-file';
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { OnnxEngine } from '../src/engine/onnx-engine';
import type { DecodeMode, GenerationRequest } from '../src/engine/types';
import { normalizeAnswer } from '../src/engine/vote';
import { runSamples } from '../src/reasoning/sampling-run';

const ROOT = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tiny' },
    limit: { type: 'string', default: '100' },
    n: { type: 'string', default: '8' },
    batch: { type: 'string', default: '2' },
    'max-tokens': { type: 'string', default: '96' },
    seed: { type: 'string', default: '1' },
  },
});
const folder = resolve(ROOT, args.model!);
const n = Number(args.n);
const batch = Number(args.batch);
const maxTokens = Number(args['max-tokens']);
const seed = Number(args.seed);

interface Problem {
  prompt?: string;
  messages?: GenerationRequest['messages'];
  answer: string | number;
  steps?: number; // arithmetic steps of the tiny-arith problems: the difficulty breakdown of adaptive voting
}
const problems: Problem[] = readFileSync(join(folder, 'data/test.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line))
  .slice(0, Number(args.limit));

function requestFor(p: Problem, mode: DecodeMode, index: number): Omit<GenerationRequest, 'samples'> {
  return {
    messages: p.messages ?? [{ role: 'user', content: p.prompt! }],
    mode,
    soft_thinking: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, noise_scale: 1, max_thinking_tokens: maxTokens, cold_stop: null },
    answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 },
    max_tokens: maxTokens,
    seed: seed * 1_000_003 + index,
  };
}

const vote = { extract: 'boxed' as const, normalize: 'math' as const, adaptive: false, adaptive_batch_size: batch };
const engine = await OnnxEngine.load(folder, { modelId: 'eval' });
const rows: string[] = [];
const difficultyRows: string[] = [];
const started = Date.now();
for (const mode of ['soft', 'discrete'] as const) {
  let pass1 = 0;
  let majority = 0;
  let passN = 0;
  let adaptiveCorrect = 0;
  let adaptiveSamples = 0;
  let tokens = 0;
  let adaptiveTokens = 0;
  let greedy = 0;
  const byDifficulty = new Map<number, { problems: number; samples: number; majority: number }>();
  for (const [i, p] of problems.entries()) {
    const gold = normalizeAnswer(String(p.answer), 'math');
    const request = requestFor(p, mode, i);
    const deterministic = {
      ...request,
      soft_thinking: { ...request.soft_thinking, noise_scale: 0 },
      answer: { ...request.answer, temperature: 0 },
    };
    greedy += (await runSamples(engine, deterministic, 1, vote)).answers[0] === gold ? 1 : 0;
    const full = await runSamples(engine, requestFor(p, mode, i), n, vote);
    const correct = full.answers.map((a) => a === gold);
    pass1 += correct.filter(Boolean).length / n;
    passN += correct.some(Boolean) ? 1 : 0;
    majority += full.tally.answer === gold ? 1 : 0;
    tokens += full.samples.reduce((s, x) => s + x.token_ids.length, 0);
    const adaptive = await runSamples(engine, requestFor(p, mode, i), n, { ...vote, adaptive: true });
    adaptiveCorrect += adaptive.tally.answer === gold ? 1 : 0;
    adaptiveSamples += adaptive.samples.length;
    adaptiveTokens += adaptive.samples.reduce((s, x) => s + x.token_ids.length, 0);
    if (p.steps !== undefined) {
      const group = byDifficulty.get(p.steps) ?? { problems: 0, samples: 0, majority: 0 };
      group.problems++;
      group.samples += adaptive.samples.length;
      group.majority += full.tally.agreement;
      byDifficulty.set(p.steps, group);
    }
  }
  for (const [steps, g] of [...byDifficulty].sort((a, b) => a[0] - b[0])) {
    difficultyRows.push(
      `| ${mode} | ${steps} | ${g.problems} | ${n} | ${(g.majority / g.problems).toFixed(2)} | ${(g.samples / g.problems).toFixed(2)} | ${(100 * (1 - g.samples / (g.problems * n))).toFixed(1)} | ${args.model} |`,
    );
  }
  const count = problems.length;
  const pct = (x: number) => ((100 * x) / count).toFixed(1);
  rows.push(
    `| ${mode} | ${count} | ${pct(greedy)} | ${n} | ${pct(pass1)} | ${pct(majority)} | ${pct(passN)} | ${pct(adaptiveCorrect)} | ${batch} | ${(adaptiveSamples / count).toFixed(2)} | ${(100 * (1 - adaptiveSamples / (count * n))).toFixed(1)} | ${(100 * (1 - adaptiveTokens / tokens)).toFixed(1)} | ${maxTokens} | ${args.model} | ${new Date().toISOString().slice(0, 16).replace('T', ' ')}Z |`,
  );
  console.error(`${mode}: done after ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
await engine.release();

const header =
  '| mode | problems | greedy % | n | Pass@1 % | majority@n % | pass@n (any) % | adaptive majority % | adaptive batch | adaptive samples / problem | samples saved % | tokens saved % | max tokens | model | date |';
const table = [header, separatorOf(header), ...rows].join('\n');
console.log(table);

appendRows(
  'Accuracy',
  [
    'Rows appended by `npx tsx bench/eval-reason.ts`: held-out problems of models/tiny/data/test.jsonl, API default sampling',
    '(tau 1, top_k 5, top_p 0.95, k 5, tau_g 0.1, lambda 1 in soft mode; the same settings for every discrete step),',
    'graded on the last \\boxed{}. Pass@1 = mean accuracy over the n samples; pass@n = any sample correct (not the',
    'unbiased estimator); greedy = one sample with noise off and temperature 0; adaptive = stop once the leader cannot be',
    'overtaken (batches of the given size); the saving is against always drawing n samples.',
  ],
  header,
  rows,
);
if (difficultyRows.length > 0) {
  const difficultyHeader = '| mode | steps | problems | n | mean agreement (full vote) | adaptive samples / problem | samples saved % | model |';
  console.log(['', difficultyHeader, separatorOf(difficultyHeader), ...difficultyRows].join('\n'));
  appendRows(
    'Adaptive voting by difficulty',
    ['Rows appended by `npx tsx bench/eval-reason.ts` (same run as the accuracy rows): problems grouped by their number', 'of arithmetic steps; easier problems agree more and stop earlier.'],
    difficultyHeader,
    difficultyRows,
  );
}
