/**
 * The regex dialect (src/engine/safe-regex.ts) against the shared case file tests/vectors/regex-cases.json, which
 * gpu-worker/tests/test_safe_regex.py runs through google-re2: one file, two engines, one verdict.
 */
import { readFileSync } from 'node:fs';
import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import unicodeClasses from '../../src/engine/re2-unicode-classes.json';
import {
  MAX_PATTERN_LENGTH,
  MAX_PATTERN_SIZE,
  PatternError,
  compilePattern,
  firstMatch,
  lastMatchAnswer,
  patternProblem,
} from '../../src/engine/safe-regex';

interface ValidCase {
  pattern: string;
  text: string;
  first: string | null;
  answer: string | null;
  note: string;
}
const cases = JSON.parse(readFileSync(new URL('../vectors/regex-cases.json', import.meta.url), 'utf8')) as {
  max_pattern_length: number;
  max_pattern_size: number;
  valid: ValidCase[];
  invalid: Array<{ pattern: string; why: string }>;
};

describe('regex dialect: the shared case file', () => {
  it('holds_the_limits_this_module_enforces', () => {
    expect(MAX_PATTERN_LENGTH).toBe(cases.max_pattern_length);
    expect(MAX_PATTERN_SIZE).toBe(cases.max_pattern_size);
  });

  it('accepts_every_valid_case_and_finds_its_first_match_and_vote_answer', () => {
    expect(cases.valid.length).toBeGreaterThan(30);
    for (const c of cases.valid) {
      expect(patternProblem(c.pattern), c.note).toBeNull();
      const regex = compilePattern(c.pattern);
      expect(firstMatch(regex, c.text), c.note).toBe(c.first);
      expect(lastMatchAnswer(regex, c.text), c.note).toBe(c.answer);
    }
  });

  it('rejects_every_invalid_case_with_a_reason', () => {
    expect(cases.invalid.length).toBeGreaterThan(30);
    for (const c of cases.invalid) {
      expect(patternProblem(c.pattern), c.why).toEqual(expect.any(String));
      expect(() => compilePattern(c.pattern), c.why).toThrow(PatternError);
    }
  });
});

describe('regex dialect: rules', () => {
  it('names_the_problem_in_its_message', () => {
    expect(patternProblem('(a)\\1')).toMatch(/not a valid RE2 regular expression \(invalid escape sequence/);
    expect(patternProblem('a'.repeat(513))).toBe('must be at most 512 characters (got 513)');
    expect(patternProblem('\\p{L}{1000}')).toMatch(/too large/);
    expect(patternProblem('\\p{Garay}')).toMatch(/Unicode class Garay/);
  });

  it('lists_only_unicode_classes_that_re2js_also_compiles', () => {
    for (const name of [...unicodeClasses.categories, ...unicodeClasses.scripts]) {
      expect(() => RE2JS.compile(`\\p{${name}}`), name).not.toThrow();
      expect(patternProblem(`[\\P{${name}}x]`), name).toBeNull();
    }
  });

  it('runs_a_catastrophic_backtracking_pattern_over_a_long_text_to_the_end', () => {
    // a backtracking engine takes exponential time here; the test only has to finish
    const regex = compilePattern('(.*.*)*X');
    const text = 'a'.repeat(100_000);
    expect(firstMatch(regex, text)).toBeNull();
    expect(lastMatchAnswer(regex, text)).toBeNull();
    expect(lastMatchAnswer(regex, `${text}X`)).toBe(text);
  });
});
