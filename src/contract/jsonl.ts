/**
 * Line-by-line validation of a fine-tuning dataset (JSONL) as it streams through: bytes pass on unchanged, and
 * the stream errors with a `JsonlError` naming the line number and field at the first bad line.
 * A line is `{"prompt": str}` or `{"messages": [{role, content}, ...]}` plus `"answer": str | number`;
 * other keys are kept (graders may read them). Blank lines are allowed and skipped.
 */

export class JsonlError extends Error {
  constructor(
    readonly line: number,
    detail: string,
  ) {
    super(line > 0 ? `line ${line}: ${detail}` : detail);
  }
}

const ROLES = new Set(['system', 'user', 'assistant']);

/** Why one parsed line is not a valid example, or null. */
export function checkExample(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object';
  const o = value as Record<string, unknown>;
  const hasPrompt = 'prompt' in o;
  const hasMessages = 'messages' in o;
  if (!hasPrompt && !hasMessages) return 'missing "prompt" or "messages"';
  if (hasPrompt && hasMessages) return 'has both "prompt" and "messages"; give one';
  if (hasPrompt && (typeof o.prompt !== 'string' || o.prompt.length === 0)) return '"prompt" must be a non-empty string';
  if (hasMessages) {
    if (!Array.isArray(o.messages) || o.messages.length === 0) return '"messages" must be a non-empty array';
    for (let i = 0; i < o.messages.length; i++) {
      const m = o.messages[i] as Record<string, unknown>;
      if (typeof m !== 'object' || m === null || Array.isArray(m)) return `"messages[${i}]" must be an object`;
      if (typeof m.role !== 'string' || !ROLES.has(m.role))
        return `"messages[${i}].role" must be one of system, user, assistant`;
      if (typeof m.content !== 'string') return `"messages[${i}].content" must be a string`;
    }
  }
  if (!('answer' in o)) return 'missing "answer"';
  if (typeof o.answer === 'number' ? !Number.isFinite(o.answer) : typeof o.answer !== 'string')
    return '"answer" must be a string or a number';
  return null;
}

/** The validating pass-through. `examples` counts valid lines; read it after the stream ended. */
export function jsonlValidator(maxLineBytes: number) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let line = 0;
  const state = { examples: 0 };

  const checkLine = (bytes: Uint8Array) => {
    line++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new JsonlError(line, 'not valid UTF-8');
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new JsonlError(line, `invalid JSON (${(e as Error).message})`);
    }
    const problem = checkExample(value);
    if (problem) throw new JsonlError(line, problem);
    state.examples++;
  };

  const joinPending = (tail: Uint8Array) => {
    if (pending.length === 0) return tail;
    const all = new Uint8Array(pendingBytes + tail.length);
    let o = 0;
    for (const p of pending) {
      all.set(p, o);
      o += p.length;
    }
    all.set(tail, o);
    pending = [];
    pendingBytes = 0;
    return all;
  };

  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      try {
        let start = 0;
        for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
          const piece = chunk.subarray(start, nl);
          if (pendingBytes + piece.length > maxLineBytes) throw new JsonlError(line + 1, `longer than ${maxLineBytes} bytes`);
          checkLine(joinPending(piece));
          start = nl + 1;
        }
        const rest = chunk.subarray(start);
        if (pendingBytes + rest.length > maxLineBytes) throw new JsonlError(line + 1, `longer than ${maxLineBytes} bytes`);
        if (rest.length) {
          pending.push(rest.slice());
          pendingBytes += rest.length;
        }
        controller.enqueue(chunk);
      } catch (e) {
        controller.error(e);
      }
    },
    flush(controller) {
      try {
        if (pendingBytes > 0) checkLine(joinPending(new Uint8Array(0)));
        if (state.examples === 0) throw new JsonlError(0, 'the file has no examples (no non-blank JSONL lines)');
      } catch (e) {
        controller.error(e);
      }
    },
  });
  return { stream, state };
}
