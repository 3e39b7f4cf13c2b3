/**
 * Runs the samples of one request on an engine and votes: all n at once, or with adaptive voting in batches of
 * `adaptive_batch_size` sample indices (0..b-1, b..2b-1, ...) until the leading answer cannot be overtaken by the
 * samples still to come. Sample i draws the same Philox noise either way, so an adaptive run's samples are the first
 * samples of the full run.
 */
import type { GeneratedSample, GenerationHooks, GenerationRequest, ReasoningEngine } from '../engine/types';
import { leaderIsDecided, majorityVote, sampleAnswer, type VoteSettings, type VoteTally } from '../engine/vote';

export interface AdaptiveVote extends VoteSettings {
  adaptive: boolean;
  adaptive_batch_size: number;
}

export interface SamplingRun {
  prompt_tokens: number;
  samples: GeneratedSample[];
  answers: Array<string | null>; // extracted, normalised answer per sample
  tally: VoteTally;
}

export async function runSamples(
  engine: ReasoningEngine,
  request: Omit<GenerationRequest, 'samples'>,
  n: number,
  vote: AdaptiveVote,
  hooks: GenerationHooks = {},
): Promise<SamplingRun> {
  const batch = vote.adaptive ? vote.adaptive_batch_size : n;
  const samples: GeneratedSample[] = [];
  const answers: Array<string | null> = [];
  let promptTokens = 0;
  for (let start = 0; start < n; start += batch) {
    const indices = Array.from({ length: Math.min(batch, n - start) }, (_, i) => start + i);
    const result = await engine.generate({ ...request, samples: indices }, hooks);
    promptTokens = result.prompt_tokens;
    for (const s of result.samples) {
      samples.push(s);
      answers.push(sampleAnswer(s.answer, vote));
    }
    if (hooks.signal?.aborted) break;
    if (vote.adaptive && leaderIsDecided(answers, n - samples.length)) break;
  }
  return { prompt_tokens: promptTokens, samples, answers, tally: majorityVote(answers) };
}
