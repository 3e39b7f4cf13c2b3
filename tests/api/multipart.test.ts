/** The streaming multipart reader against bodies built by the platform's FormData, split at every chunk size. */
import { describe, expect, it } from 'vitest';
import { MultipartError, boundaryOf, readMultipart } from '../../src/routes/files/multipart';

async function formBody(form: FormData) {
  const req = new Request('http://x/', { method: 'POST', body: form });
  return { bytes: new Uint8Array(await req.arrayBuffer()), contentType: req.headers.get('content-type')! };
}

function chunked(bytes: Uint8Array, size: number) {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (i >= bytes.length) return ctl.close();
      ctl.enqueue(bytes.slice(i, i + size));
      i += size;
    },
  });
}

async function readAll(body: ReadableStream<Uint8Array>, contentType: string) {
  const parts: { name: string; filename: string | null; text: string }[] = [];
  for await (const part of readMultipart(body, boundaryOf(contentType)!)) {
    if (part.name === 'skip') continue; // left unread: the reader must drain it
    parts.push({ name: part.name, filename: part.filename, text: await new Response(part.body).text() });
  }
  return parts;
}

describe('readMultipart', () => {
  it('yields_the_same_parts_whatever_the_chunk_boundaries', async () => {
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('skip', 'ignored\r\n--not-a-boundary');
    const content = '{"prompt":"a\\r\\n--","answer":1}\n'.repeat(50);
    form.append('file', new Blob([content]), 'data.jsonl');
    const { bytes, contentType } = await formBody(form);
    for (const size of [1, 2, 3, 7, 64, 1000, bytes.length]) {
      const parts = await readAll(chunked(bytes, size), contentType);
      expect(parts).toEqual([
        { name: 'purpose', filename: null, text: 'fine-tune' },
        { name: 'file', filename: 'data.jsonl', text: content },
      ]);
    }
  });

  it('reports_a_truncated_body', async () => {
    const form = new FormData();
    form.append('file', new Blob(['abc'.repeat(100)]), 'x.jsonl');
    const { bytes, contentType } = await formBody(form);
    await expect(readAll(chunked(bytes.slice(0, bytes.length - 30), 16), contentType)).rejects.toThrow(MultipartError);
  });
});
