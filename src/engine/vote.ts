/**
 * Answer extraction, normalisation and majority voting over the samples of one request, with the adaptive stopping
 * rule: stop sampling once the leading answer cannot be overtaken (or tied) by the samples still to come.
 */
import { compilePattern, lastMatchAnswer } from "./safe-regex";

export type ExtractMethod = "boxed" | "last_number" | "regex";
export type NormalizeMethod = "math" | "exact";

export interface VoteSettings {
  extract: ExtractMethod;
  normalize: NormalizeMethod;
  pattern?: string; // required for extract "regex" (safe-regex.ts dialect): the first group (or the match) of the last match
}

export interface VoteTally {
  answer: string | null; // the winning normalised answer; null when no sample produced an answer
  votes: number; // samples that voted for it
  agreement: number; // votes / samples
  samples: number;
  distribution: Array<{ answer: string; count: number }>; // descending count, ties by first appearance
}

/** The content of the last \boxed{...} (balanced braces), or null. */
export function lastBoxed(text: string): string | null {
  const start = text.lastIndexOf("\\boxed");
  if (start < 0) return null;
  let i = start + "\\boxed".length;
  while (text[i] === " ") i++;
  if (text[i] !== "{") return null;
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    if (text[j] === "{") depth++;
    else if (text[j] === "}" && --depth === 0) return text.slice(i + 1, j);
  }
  return null;
}

const NUMBER = /-?\d[\d,]*(?:\.\d+)?(?:\/\d+)?|-?\.\d+/g;

/** The last number in the text (with thousands separators, decimals or a simple fraction), or null. */
export function lastNumber(text: string): string | null {
  const matches = text.match(NUMBER);
  return matches ? matches[matches.length - 1] : null;
}

export function extractAnswer(text: string, s: VoteSettings): string | null {
  if (s.extract === "boxed") return lastBoxed(text);
  if (s.extract === "last_number") return lastNumber(text);
  if (!s.pattern) throw new Error("extract 'regex' needs a pattern");
  return lastMatchAnswer(compilePattern(s.pattern), text);
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

/** "p/q" reduced (or "p" when q = 1) for a decimal or fraction string; null when the text is not such a number. */
function canonicalNumber(text: string): string | null {
  const fraction = /^(-?)\\frac\{(\d+)\}\{(\d+)\}$/.exec(text) ?? /^(-?)(\d+)\/(\d+)$/.exec(text);
  let numerator: bigint;
  let denominator: bigint;
  if (fraction) {
    numerator = BigInt(fraction[2]) * (fraction[1] ? -1n : 1n);
    denominator = BigInt(fraction[3]);
    if (denominator === 0n) return null;
  } else {
    const decimal = /^(-?)(\d*)(?:\.(\d+))?$/.exec(text);
    if (!decimal || (decimal[2] === "" && decimal[3] === undefined)) return null;
    const digits = decimal[3] ?? "";
    numerator = BigInt((decimal[2] || "0") + digits) * (decimal[1] ? -1n : 1n);
    denominator = 10n ** BigInt(digits.length);
  }
  const d = gcd(numerator, denominator) || 1n;
  numerator /= d;
  denominator /= d;
  return denominator === 1n ? `${numerator}` : `${numerator}/${denominator}`;
}

/** Normalise an extracted answer: "exact" trims; "math" also drops LaTeX decoration and canonicalises numbers. */
export function normalizeAnswer(answer: string, method: NormalizeMethod): string {
  const trimmed = answer.trim();
  if (method === "exact") return trimmed;
  const stripped = trimmed
    .replace(/\\text\{([^{}]*)\}/g, "$1")
    .replace(/\\(left|right|displaystyle|!|,|;|\s)/g, "")
    .replace(/\\[dt]frac/g, "\\frac")
    .replace(/\\frac(\d)(\d)/g, "\\frac{$1}{$2}")
    .replace(/^\$+|\$+$/g, "")
    .replace(/\s+/g, "")
    .replace(/\.$/, "")
    .replace(/(\d),(?=\d{3}\b)/g, "$1");
  return canonicalNumber(stripped) ?? stripped;
}

/** Extract and normalise one sample's answer text; null when nothing could be extracted. */
export function sampleAnswer(text: string, s: VoteSettings): string | null {
  const raw = extractAnswer(text, s);
  return raw === null ? null : normalizeAnswer(raw, s.normalize);
}

/** Counts in first-appearance order; samples without an answer do not vote. */
function countVotes(answers: Array<string | null>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
  return counts;
}

/** Majority vote; ties go to the answer that appeared first. */
export function majorityVote(answers: Array<string | null>): VoteTally {
  const distribution = [...countVotes(answers)]
    .map(([answer, count], order) => ({ answer, count, order }))
    .sort((a, b) => b.count - a.count || a.order - b.order)
    .map(({ answer, count }) => ({ answer, count }));
  const winner = distribution[0];
  const samples = answers.length;
  return {
    answer: winner?.answer ?? null,
    votes: winner?.count ?? 0,
    agreement: samples > 0 && winner ? winner.count / samples : 0,
    samples,
    distribution,
  };
}

/** True when the leader keeps strictly more votes than any other answer even if every remaining sample disagrees. */
export function leaderIsDecided(answers: Array<string | null>, remaining: number): boolean {
  const counts = [...countVotes(answers).values()].sort((a, b) => b - a);
  const leader = counts[0] ?? 0;
  const runnerUp = counts[1] ?? 0;
  return leader > 0 && leader > runnerUp + remaining;
}
