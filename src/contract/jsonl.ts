/**
 * Line-by-line validation of a fine-tuning dataset (JSONL) as it streams through: bytes pass on unchanged, and
 * the stream errors with a `LineProblem` naming the line number and field at the first bad line. The line rules
 * are contract/dataset.json's (./dataset.ts); lines are split on "\n" only, as the worker splits them. The upload
 * (src/routes/files/upload.ts) validates with it; job creation reads stored files back with `jsonlExamples`.
 */
import { LineProblem, checkLine, noExamples, problemText } from './dataset';

/**
 * Cuts a byte stream into lines on "\n" (byte 10) only and decodes each as strict UTF-8; `onLine(text, n)` sees
 * every line, the last one without a "\n" included. Throws LineProblem for invalid UTF-8 or a line over
 * `maxLineBytes`.
 */
export class LineSplitter {
  // ignoreBOM keeps a byte-order mark in the text: the line rules drop it on line 1 only (each decode() would
  // otherwise drop one at the start of every line).
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  line = 0;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (text: string, line: number) => void,
  ) {}

  push(chunk: Uint8Array) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.emit(chunk.subarray(start, nl));
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    this.checkLength(rest.length);
    if (rest.length) {
      this.pending.push(rest.slice());
      this.pendingBytes += rest.length;
    }
  }

  end() {
    if (this.pendingBytes > 0) this.emit(new Uint8Array(0));
  }

  private checkLength(more: number) {
    if (this.pendingBytes + more > this.maxLineBytes)
      throw new LineProblem(this.line + 1, 'line_too_long', `longer than ${this.maxLineBytes} bytes`);
  }

  private emit(tail: Uint8Array) {
    this.checkLength(tail.length);
    let bytes = tail;
    if (this.pending.length) {
      bytes = new Uint8Array(this.pendingBytes + tail.length);
      let o = 0;
      for (const p of this.pending) {
        bytes.set(p, o);
        o += p.length;
      }
      bytes.set(tail, o);
      this.pending = [];
      this.pendingBytes = 0;
    }
    this.line++;
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      throw new LineProblem(this.line, 'invalid_utf8', problemText('invalid_utf8'));
    }
    this.onLine(text, this.line);
  }
}

/** The validating pass-through. `examples` counts valid lines; read it after the stream ended. */
export function jsonlValidator(maxLineBytes: number) {
  const state = { examples: 0 };
  const lines = new LineSplitter(maxLineBytes, (text, line) => {
    if (!checkLine(text, line).blank) state.examples++;
  });
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      try {
        lines.push(chunk);
        controller.enqueue(chunk);
      } catch (e) {
        controller.error(e);
      }
    },
    flush(controller) {
      try {
        lines.end();
        if (state.examples === 0) throw noExamples();
      } catch (e) {
        controller.error(e);
      }
    },
  });
  return { stream, state };
}

/** The examples of a stored (already validated) JSONL file with their line numbers, in order. */
export async function* jsonlExamples(
  body: ReadableStream<Uint8Array>,
  maxLineBytes: number,
): AsyncGenerator<{ line: number; example: Record<string, unknown> }> {
  const ready: { line: number; example: Record<string, unknown> }[] = [];
  const lines = new LineSplitter(maxLineBytes, (text, line) => {
    const verdict = checkLine(text, line);
    if (!verdict.blank) ready.push({ line, example: verdict.example });
  });
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) lines.end();
    else lines.push(value);
    yield* ready.splice(0);
    if (done) return;
  }
}
