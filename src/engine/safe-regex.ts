/**
 * The regex dialect of user-supplied patterns: vote extraction (`vote.extract: "regex"` on /v1/reason and chat) and
 * the `regex` grader of fine-tuning jobs (docs/CONTRACTS.md "Regex patterns"). Patterns run on re2js, a port of RE2,
 * whose matching time is linear in the text: no pattern can backtrack for ever (`(.*.*)*X` included). The worker
 * grades with google-re2 (gpu-worker/src/softgrpo/safe_regex.py), which applies the same rules; the case file
 * tests/vectors/regex-cases.json runs through both test suites.
 *
 * A pattern is accepted when RE2 syntax accepts it and
 *   - it has 1 to MAX_PATTERN_LENGTH code points and is well-formed Unicode (no lone surrogate);
 *   - its size is at most MAX_PATTERN_SIZE: each character, escape or class member counts 1, a Unicode class
 *     (`\pL`, `\p{Greek}`, `\P{..}`) 100, and a counted repetition `x{n}`, `x{n,}`, `x{n,m}` counts x n (or m) times;
 *     no count may exceed 1000. This bounds the compiled program, hence the cost per character of text, in both
 *     engines (RE2 compiles a Unicode class to about 1,200 byte-level instructions);
 *   - its Unicode class names are ones RE2 itself knows (re2-unicode-classes.json);
 *   - it has no `\C` (any byte) and its group names are unique and made of A-Z a-z 0-9 _.
 * Beyond the length, these rules close every place where re2js 2.10.0 and google-re2 1.1.20251105 disagree on what
 * compiles (tests/vectors/regex-cases.json marks them "divergent"): re2js compiles lone surrogates, newer Unicode
 * scripts and properties, and large repeated classes that RE2 refuses as "pattern too large"; google-re2 accepts `\C`,
 * duplicate and non-ASCII group names, and reads a count of ten digits or more as literal text.
 */
import { RE2JS } from 're2js';
import unicodeClasses from './re2-unicode-classes.json';

export const MAX_PATTERN_LENGTH = 512;
export const MAX_PATTERN_SIZE = 1000;
export const UNICODE_CLASS_SIZE = 100;
const MAX_REPEAT = 1000;

const UNICODE_CLASS_NAMES = new Set([...unicodeClasses.categories, ...unicodeClasses.scripts]);
const GROUP_NAME = /^[A-Za-z0-9_]+$/;
const LONE_SURROGATE = /\p{Cs}/u; // with the u flag a well-formed pair is one (non-Cs) code point

export class PatternError extends Error {}

/** Why `pattern` is not in the dialect (a sentence for a 400), or null when it is. */
export function patternProblem(pattern: string): string | null {
  const length = Array.from(pattern).length;
  if (length === 0) return 'must not be empty';
  if (length > MAX_PATTERN_LENGTH) return `must be at most ${MAX_PATTERN_LENGTH} characters (got ${length})`;
  if (LONE_SURROGATE.test(pattern)) return 'must be well-formed Unicode (it has a lone surrogate)';
  try {
    RE2JS.compile(pattern);
  } catch (error) {
    return `is not a valid RE2 regular expression (${(error as Error).message.replace(/^error parsing regexp: /, '')})`;
  }
  return dialectProblem(Array.from(pattern));
}

const compiled = new Map<string, RE2JS>(); // the last few patterns: a request extracts from every one of its samples
const COMPILED_KEPT = 32;

/** The compiled pattern; throws PatternError (message as patternProblem's) when it is not in the dialect. */
export function compilePattern(pattern: string): RE2JS {
  const known = compiled.get(pattern);
  if (known) return known;
  const problem = patternProblem(pattern);
  if (problem) throw new PatternError(`pattern ${problem}`);
  const regex = RE2JS.compile(pattern);
  if (compiled.size >= COMPILED_KEPT) compiled.delete(compiled.keys().next().value!);
  compiled.set(pattern, regex);
  return regex;
}

/** The text of the first match (leftmost, RE2 semantics), or null: what a regex grader's "matches" means. */
export function firstMatch(regex: RE2JS, text: string): string | null {
  const match = regex.exec(text);
  return match ? match[0] : null;
}

/** Vote extraction: the first capture group of the last match, or the whole match when the group did not take part. */
export function lastMatchAnswer(regex: RE2JS, text: string): string | null {
  let last: RegExpMatchArray | null = null;
  for (const match of regex.matchAll(text)) last = match;
  return last ? (last[1] ?? last[0]) : null;
}

// The walk below sees only patterns that RE2 syntax accepted, so it can read them without checking their syntax.

interface Piece {
  end: number; // index after the piece
  size: number;
  problem?: string;
}

const isOneOf = (chars: string, c: string | undefined) => c !== undefined && c.length === 1 && chars.includes(c);

/** An escape at cps[i] === '\\' (not \Q, which the caller reads). */
function readEscape(cps: string[], i: number): Piece {
  const c = cps[i + 1];
  if (c === 'C') return { end: i + 2, size: 1, problem: 'must not use \\C (a single byte)' };
  if (c === 'p' || c === 'P') {
    const braced = cps[i + 2] === '{';
    const end = braced ? cps.indexOf('}', i + 3) + 1 : i + 3;
    const name = cps.slice(braced ? i + 3 : i + 2, braced ? end - 1 : end).join('').replace(/^\^/, '');
    if (!UNICODE_CLASS_NAMES.has(name))
      return { end, size: UNICODE_CLASS_SIZE, problem: `uses the Unicode class ${name}, which RE2 does not know` };
    return { end, size: UNICODE_CLASS_SIZE };
  }
  if (c === 'x') return { end: cps[i + 2] === '{' ? cps.indexOf('}', i + 3) + 1 : i + 4, size: 1 };
  if (isOneOf('01234567', c)) {
    let end = i + 2;
    while (end < i + 4 && isOneOf('01234567', cps[end])) end++;
    return { end, size: 1 };
  }
  return { end: i + 2, size: 1 };
}

/** A bracket class at cps[i] === '['. */
function readClass(cps: string[], i: number): Piece {
  let j = cps[i + 1] === '^' ? i + 2 : i + 1;
  let size = 0;
  for (let first = true; first || cps[j] !== ']'; first = false) {
    if (cps[j] === '[' && cps[j + 1] === ':') {
      const close = cps.findIndex((c, k) => k > j + 1 && c === ':' && cps[k + 1] === ']');
      if (close >= 0) {
        j = close + 2;
        size += 1;
        continue;
      }
    }
    if (cps[j] === '\\') {
      const escape = readEscape(cps, j);
      if (escape.problem) return escape;
      j = escape.end;
      size += escape.size;
    } else {
      j += 1;
      size += 1;
    }
  }
  return { end: j + 1, size: Math.max(size, 1) };
}

/** A counted repetition at cps[i] === '{' as RE2 reads one ({n}, {n,}, {n,m}; no leading zeros), or null (a literal). */
function readRepeat(cps: string[], i: number): { end: number; count: number } | null {
  const number = (from: number) => {
    let k = from;
    while (isOneOf('0123456789', cps[k])) k++;
    if (k === from || (k - from > 1 && cps[from] === '0')) return null;
    return { end: k, value: Number(cps.slice(from, k).join('')) };
  };
  const min = number(i + 1);
  if (!min) return null;
  if (cps[min.end] === '}') return { end: min.end + 1, count: min.value };
  if (cps[min.end] !== ',') return null;
  if (cps[min.end + 1] === '}') return { end: min.end + 2, count: min.value };
  const max = number(min.end + 1);
  if (!max || cps[max.end] !== '}') return null;
  return { end: max.end + 1, count: Math.max(min.value, max.value) };
}

function dialectProblem(cps: string[]): string | null {
  const groups: number[] = [0]; // the size so far of each open group, the whole pattern first
  let operand: number | null = null; // the size of what a repetition here would repeat
  const names = new Set<string>();
  const tooLarge = () => groups[groups.length - 1] > MAX_PATTERN_SIZE; // sizes only grow: stop at the first excess
  const add = (size: number) => {
    groups[groups.length - 1] += size;
    operand = size;
  };
  for (let i = 0; i < cps.length && !tooLarge(); ) {
    const c = cps[i];
    if (c === '\\' && cps[i + 1] === 'Q') {
      for (i += 2; i < cps.length && !(cps[i] === '\\' && cps[i + 1] === 'E'); i++) add(1);
      i += 2;
    } else if (c === '\\' || c === '[') {
      const piece = c === '\\' ? readEscape(cps, i) : readClass(cps, i);
      if (piece.problem) return piece.problem;
      add(piece.size);
      i = piece.end;
    } else if (c === '(' && cps[i + 1] === '?' && (cps[i + 2] === '<' || cps[i + 2] === 'P')) {
      const from = cps[i + 2] === '<' ? i + 3 : i + 4; // (?<name> or (?P<name>
      const close = cps.indexOf('>', from);
      const name = cps.slice(from, close).join('');
      if (!GROUP_NAME.test(name)) return `has the group name "${name}": use only A-Z a-z 0-9 _`;
      if (names.has(name)) return `has two groups named "${name}"`;
      names.add(name);
      groups.push(0);
      operand = null;
      i = close + 1;
    } else if (c === '(' && cps[i + 1] === '?') {
      let j = i + 2;
      while (cps[j] !== ')' && cps[j] !== ':') j++;
      if (cps[j] === ':') groups.push(0); // (?flags:...) is a group, (?flags) alone only sets flags
      operand = null;
      i = j + 1;
    } else if (c === '(') {
      groups.push(0);
      operand = null;
      i += 1;
    } else if (c === ')') {
      add(groups.pop()!);
      i += 1;
    } else if (c === '{' && readRepeat(cps, i)) {
      const { end, count } = readRepeat(cps, i)!;
      if (count > MAX_REPEAT) return `repeats something ${count} times (at most ${MAX_REPEAT})`;
      if (operand !== null) groups[groups.length - 1] += operand * (Math.max(count, 1) - 1);
      operand = null;
      i = end;
    } else if (c === '|' || c === '*' || c === '+' || c === '?') {
      operand = null;
      i += 1;
    } else {
      add(1);
      i += 1;
    }
  }
  if (tooLarge() || groups[0] > MAX_PATTERN_SIZE)
    return (
      `is too large: its size is over ${MAX_PATTERN_SIZE} (each character counts 1, a Unicode class ` +
      `${UNICODE_CLASS_SIZE}, and x{n} counts x n times)`
    );
  return null;
}
