/**
 * Dataset (JSONL) line rules as contract/dataset.json states them. src/routes/files/jsonl.ts applies them to an
 * upload as it streams; gpu-worker/src/softgrpo/data.py applies the same file's rules before training, and
 * tests/vectors/dataset-cases.json holds both to one verdict (line and code) per case.
 */
import contract from '../../contract/dataset.json';

export type DatasetProblem = keyof typeof contract.problems;
export const MAX_DEPTH = contract.max_depth;
export const ROLES: readonly string[] = contract.roles;
const WHITESPACE = new Set(contract.whitespace);
const BLANK = new Set(contract.blank_line_chars);

/** Whether every character of `text` is in `set` (all of the contract's sets are single UTF-16 units). */
function onlyOf(text: string, set: Set<string>): boolean {
  for (let i = 0; i < text.length; i++) if (!set.has(text[i])) return false;
  return true;
}
const LONE_SURROGATE = /[\uD800-\uDFFF]/u; // with the u flag a paired surrogate is one code point: only lone ones match

/** The contract's sentence for a problem, its {placeholders} filled. */
export function problemText(code: DatasetProblem, params: Record<string, string | number> = {}): string {
  const all: Record<string, string | number> = { max_depth: MAX_DEPTH, roles: ROLES.join(', '), ...params };
  return contract.problems[code].replace(/\{(\w+)\}/g, (_, k: string) => String(all[k]));
}

export class LineProblem extends Error {
  constructor(
    /** 1-based line number; 0 for a problem of the whole file. */
    readonly line: number,
    readonly code: DatasetProblem | 'line_too_long',
    detail: string,
  ) {
    super(line > 0 ? `line ${line}: ${detail}` : detail);
  }
}

/** Whether the text opens more than MAX_DEPTH arrays/objects at once (brackets outside strings), before parsing. */
export function nestedTooDeep(text: string): boolean {
  let brackets = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x5b || ch === 0x7b) brackets++;
  }
  if (brackets <= MAX_DEPTH) return false;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      if (++depth > MAX_DEPTH) return true;
    } else if (ch === ']' || ch === '}') depth--;
  }
  return false;
}

/** Whether any string or key of a parsed JSON value holds a lone surrogate. */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([k, v]) => LONE_SURROGATE.test(k) || hasLoneSurrogate(v));
  return false;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first rule a parsed line breaks, from not_object on (contract order), or null. */
export function exampleProblem(value: unknown): { code: DatasetProblem; detail: string } | null {
  const fail = (code: DatasetProblem, params?: Record<string, string | number>) => ({ code, detail: problemText(code, params) });
  if (!isObject(value)) return fail('not_object');
  const hasPrompt = 'prompt' in value;
  if (hasPrompt === 'messages' in value) return fail('prompt_or_messages');
  if (hasPrompt) {
    if (typeof value.prompt !== 'string' || onlyOf(value.prompt, WHITESPACE)) return fail('invalid_prompt');
  } else {
    const messages = value.messages;
    if (!Array.isArray(messages) || messages.length === 0) return fail('invalid_messages');
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (!isObject(m) || typeof m.role !== 'string' || !ROLES.includes(m.role) || typeof m.content !== 'string')
        return fail('invalid_message', { index: i });
    }
  }
  if (!('answer' in value)) return fail('missing_answer');
  const answer = value.answer;
  if (typeof answer === 'number' ? !Number.isFinite(answer) : typeof answer !== 'string') return fail('invalid_answer');
  return null;
}

export type LineVerdict = { blank: true } | { blank: false; example: Record<string, unknown> };

/**
 * One decoded line (without its "\n"): blank, or a valid example; throws LineProblem otherwise. `line` is its
 * 1-based number (line 1 may start with a byte-order mark).
 */
export function checkLine(text: string, line: number): LineVerdict {
  if (text.endsWith(contract.strip_line_end)) text = text.slice(0, -1);
  if (line === 1 && text.startsWith(contract.byte_order_mark)) text = text.slice(1);
  if (onlyOf(text, BLANK)) return { blank: true };
  if (nestedTooDeep(text)) throw new LineProblem(line, 'too_deep', problemText('too_deep'));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new LineProblem(line, 'invalid_json', `${problemText('invalid_json')} (${(e as Error).message})`);
  }
  if (hasLoneSurrogate(value)) throw new LineProblem(line, 'lone_surrogate', problemText('lone_surrogate'));
  const problem = exampleProblem(value);
  if (problem) throw new LineProblem(line, problem.code, problem.detail);
  return { blank: false, example: value as Record<string, unknown> };
}

export const noExamples = () => new LineProblem(0, 'no_examples', problemText('no_examples'));

/** The chat messages of an example: `messages`, or one user message holding `prompt` (as softgrpo.data). */
export function exampleMessages(example: Record<string, unknown>): { role: string; content: string }[] {
  if (Array.isArray(example.messages))
    return (example.messages as { role: string; content: string }[]).map((m) => ({ role: m.role, content: m.content }));
  return [{ role: 'user', content: example.prompt as string }];
}
