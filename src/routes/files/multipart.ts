/**
 * A streaming multipart/form-data reader: yields one part at a time with its body as a stream, so a large file
 * part flows to the blob store without being held in memory (hono's parseBody buffers the whole request).
 * The consumer reads (or abandons) each part's body before asking for the next part.
 */

export class MultipartError extends Error {}

export interface Part {
  name: string;
  filename: string | null;
  contentType: string | null;
  body: ReadableStream<Uint8Array>;
}

const enc = new TextEncoder();
const MAX_HEADER_BYTES = 16 * 1024;

export function boundaryOf(contentType: string): string | null {
  const m = contentType.match(/boundary=(?:"([^"]+)"|([^;\s]+))/i);
  return m ? (m[1] ?? m[2]) : null;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  for (let i = hay.indexOf(first, from); i !== -1 && i <= hay.length - needle.length; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

class Buffered {
  buf = new Uint8Array(0);
  done = false;
  constructor(private reader: ReadableStreamDefaultReader<Uint8Array>) {}
  async more(): Promise<boolean> {
    if (this.done) return false;
    const { done, value } = await this.reader.read();
    if (done) {
      this.done = true;
      return false;
    }
    const next = new Uint8Array(this.buf.length + value.length);
    next.set(this.buf);
    next.set(value, this.buf.length);
    this.buf = next;
    return true;
  }
  take(n: number): Uint8Array {
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

function parseHeaders(text: string) {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const disp = headers.get('content-disposition') ?? '';
  const name = disp.match(/\bname="([^"]*)"/i)?.[1] ?? disp.match(/\bname=([^;\s]+)/i)?.[1];
  if (!/^form-data\b/i.test(disp) || name === undefined) throw new MultipartError('part without a form-data name');
  const filename = disp.match(/\bfilename="([^"]*)"/i)?.[1] ?? disp.match(/\bfilename=([^;\s]+)/i)?.[1] ?? null;
  return { name, filename, contentType: headers.get('content-type') ?? null };
}

export async function* readMultipart(body: ReadableStream<Uint8Array>, boundary: string): AsyncGenerator<Part> {
  const src = new Buffered(body.getReader());
  const delimiter = enc.encode(`\r\n--${boundary}`);
  // The first boundary has no leading CRLF: pretend it had one.
  src.buf = enc.encode('\r\n');

  // Skip the preamble up to the first delimiter.
  for (;;) {
    const i = indexOf(src.buf, delimiter, 0);
    if (i !== -1) {
      src.take(i + delimiter.length);
      break;
    }
    if (src.buf.length > delimiter.length) src.take(src.buf.length - delimiter.length);
    if (!(await src.more())) throw new MultipartError('no multipart boundary found');
  }

  for (;;) {
    while (src.buf.length < 2) if (!(await src.more())) throw new MultipartError('multipart body ended early');
    if (src.buf[0] === 0x2d && src.buf[1] === 0x2d) return; // "--": closing delimiter
    // Headers end at CRLFCRLF; the CRLF after the delimiter is the first of them.
    let end: number;
    while ((end = indexOf(src.buf, enc.encode('\r\n\r\n'), 0)) === -1) {
      if (src.buf.length > MAX_HEADER_BYTES) throw new MultipartError('multipart part headers too large');
      if (!(await src.more())) throw new MultipartError('multipart body ended early');
    }
    const head = parseHeaders(new TextDecoder().decode(src.take(end + 4)).slice(2));
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          const i = indexOf(src.buf, delimiter, 0);
          if (i !== -1) {
            if (i > 0) controller.enqueue(src.take(i));
            src.take(delimiter.length);
            finished = true;
            controller.close();
            return;
          }
          // Keep a tail that could be the start of the delimiter.
          const safe = src.buf.length - (delimiter.length - 1);
          if (safe > 0) {
            controller.enqueue(src.take(safe));
            return;
          }
          if (!(await src.more())) {
            controller.error(new MultipartError('multipart body ended early'));
            return;
          }
        }
      },
    });
    yield { ...head, body: stream };
    if (!finished) {
      if (stream.locked) throw new MultipartError('multipart part abandoned while being read');
      // The consumer skipped this part: drain it to find the next one.
      const reader = stream.getReader();
      while (!(await reader.read()).done) {
        /* discard */
      }
    }
  }
}

/** Reads a small text field (e.g. `purpose`), refusing more than `max` bytes. */
export async function readSmallText(body: ReadableStream<Uint8Array>, max: number, field: string): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) throw new MultipartError(`${field}: longer than ${max} bytes`);
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}
