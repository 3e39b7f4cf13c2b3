/**
 * Upload of a JSONL dataset: multipart/form-data (`purpose`, `file`) or a raw body (`?purpose=&filename=`).
 * The file streams through the line validator into the blob store; on any error the blob is gone and no row
 * exists, so a failed upload leaves nothing behind.
 */
import type { Context } from 'hono';
import { files, type FileRow } from '../../db/schema';
import { LineProblem } from '../../contract/dataset';
import { jsonlValidator } from '../../contract/jsonl';
import { ApiError } from '../../errors';
import { hashingStream, sha256Hex } from '../../lib/hash';
import { BlobTooLargeError, limitStream } from '../../lib/streams';
import type { AppEnv } from '../../router';
import { MultipartError, boundaryOf, readMultipart, readSmallText } from './multipart';

export const RAW_UPLOAD_TYPES = ['application/jsonl', 'application/x-ndjson', 'application/json-lines', 'text/plain', 'application/octet-stream'];
const FILENAME_RE = /^[^\x00-\x1f/\\]{1,255}$/;

/**
 * Stores the upload and returns its row; sets `uploadFingerprint`. In idempotency probe mode it validates and
 * fingerprints the upload without storing anything and returns null.
 */
export async function uploadFile(c: Context<AppEnv>): Promise<FileRow | null> {
  const deps = c.get('deps');
  const { limits } = deps.config;
  const tenantId = c.get('tenantId');
  const contentType = c.req.header('content-type') ?? '';
  const mediaType = contentType.split(';')[0].trim().toLowerCase();
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > limits.maxFileBytes + 64 * 1024)
    throw new ApiError(413, `File larger than ${limits.maxFileBytes} bytes.`, { param: 'file', code: 'file_too_large' });
  const body = c.req.raw.body;
  if (!body) throw new ApiError(400, 'file: is required', { param: 'file', code: 'missing_file' });

  const id = deps.ids.next('file');
  const blobKey = `files/${tenantId}/${id}`;
  let purpose: string | undefined;
  let filename: string | undefined;
  let stored: { size: number; sha256: string; examples: number } | null = null;

  const probe = c.get('idempotencyProbe') === true;
  const store = async (stream: ReadableStream<Uint8Array>) => {
    const v = jsonlValidator(limits.maxLineBytes);
    if (probe) {
      const h = hashingStream();
      const reader = stream.pipeThrough(v.stream).pipeThrough(limitStream(limits.maxFileBytes)).pipeThrough(h.stream).getReader();
      while (!(await reader.read()).done) {
        /* validate and hash only */
      }
      return { size: h.bytes, sha256: h.digest(), examples: v.state.examples };
    }
    const info = await deps.blobs.put(blobKey, stream.pipeThrough(v.stream), {
      maxBytes: limits.maxFileBytes,
      contentType: 'application/jsonl',
    });
    return { ...info, examples: v.state.examples };
  };

  try {
    if (mediaType === 'multipart/form-data') {
      const boundary = boundaryOf(contentType);
      if (!boundary) throw new MultipartError('multipart/form-data without a boundary');
      for await (const part of readMultipart(body, boundary)) {
        if (part.name === 'purpose') purpose = (await readSmallText(part.body, 64, 'purpose')).trim();
        else if (part.name === 'file') {
          if (stored) throw new MultipartError('file: more than one file part');
          filename = part.filename ?? 'upload.jsonl';
          stored = await store(part.body);
        }
      }
    } else if (RAW_UPLOAD_TYPES.includes(mediaType)) {
      purpose = c.req.query('purpose');
      filename = c.req.query('filename') ?? 'upload.jsonl';
      stored = await store(body);
    } else {
      throw new ApiError(415, `Content-Type must be multipart/form-data or one of ${RAW_UPLOAD_TYPES.join(', ')}.`, {
        code: 'unsupported_media_type',
      });
    }
    if (!stored) throw new ApiError(400, 'file: is required', { param: 'file', code: 'missing_file' });
    if (purpose === undefined) throw new ApiError(400, 'purpose: is required', { param: 'purpose', code: 'invalid_value' });
    if (purpose !== 'fine-tune')
      throw new ApiError(400, `purpose: must be "fine-tune" (got "${purpose.slice(0, 40)}")`, { param: 'purpose', code: 'invalid_value' });
    if (!filename || !FILENAME_RE.test(filename))
      throw new ApiError(400, 'filename: must be 1-255 characters without path separators', { param: 'filename', code: 'invalid_value' });
    c.set('uploadFingerprint', sha256Hex(`upload\n${purpose}\n${filename}\n${stored.sha256}`));
    if (probe) return null;
    const now = deps.clock.now();
    const [row] = await deps.database.db
      .insert(files)
      .values({
        id,
        tenantId,
        filename,
        purpose: 'fine-tune',
        bytes: stored.size,
        examples: stored.examples,
        sha256: stored.sha256,
        blobKey,
        createdAt: now,
      })
      .returning();
    return row;
  } catch (err) {
    if (!probe) await deps.blobs.delete(blobKey).catch(() => undefined);
    if (err instanceof LineProblem) throw new ApiError(400, err.message, { param: 'file', code: 'invalid_jsonl' });
    if (err instanceof BlobTooLargeError)
      throw new ApiError(413, `File larger than ${limits.maxFileBytes} bytes.`, { param: 'file', code: 'file_too_large' });
    if (err instanceof MultipartError) throw new ApiError(400, err.message, { param: 'file', code: 'invalid_multipart' });
    throw err;
  }
}
