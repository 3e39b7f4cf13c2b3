/**
 * `/blobs/<key>`: the targets of HMAC-signed URLs (src/adapters/signed-urls.ts). GET streams a blob, PUT streams
 * one in (up to Limits.maxBlobBytes, all-or-nothing). No bearer token: the signature is the credential, for one
 * method on one key until it expires. Not part of the public OpenAPI document.
 *
 * PUT is write-once and bound to its job (src/jobs/checkpoint-uploads.ts): a key that holds a blob is never
 * replaced (409 blob_exists), and a URL stops working once its checkpoint is registered or its job stops running
 * (403 upload_closed), whatever its expiry says.
 */
import { Hono } from 'hono';
import { checkBlobSignature } from '../../adapters/signed-urls';
import { ApiError } from '../../errors';
import { checkpointUploadRefusal } from '../../jobs/checkpoint-uploads';
import { modelUploadRefusal } from '../../models/tenant-models';
import { BlobDigestMismatchError, BlobExistsError, BlobTooLargeError } from '../../lib/streams';
import type { AppEnv } from '../../router';

export const blobsRouter = new Hono<AppEnv>();

function verify(c: import('hono').Context<AppEnv>, method: 'GET' | 'PUT'): { key: string; sha256?: string } {
  let key: string;
  try {
    key = decodeURIComponent(new URL(c.req.url).pathname.replace(/^\/blobs\//, ''));
  } catch {
    throw new ApiError(400, 'Malformed blob path.', { code: 'bad_blob_path' });
  }
  const deps = c.get('deps');
  // The URL names the one method it was signed for; a GET URL must not work for PUT (or the reverse).
  if (c.req.query('method') !== method)
    throw new ApiError(403, `Signed URL refused: it was not signed for ${method}.`, { code: 'bad_signature' });
  const problem = checkBlobSignature(deps.config.signingSecret, {
    method,
    key,
    exp: c.req.query('exp'),
    sig: c.req.query('sig'),
    sha256: c.req.query('sha256'),
    nowMs: deps.clock.now(),
  });
  if (problem) throw new ApiError(403, `Signed URL refused: ${problem}.`, { code: 'bad_signature' });
  return { key, sha256: c.req.query('sha256') };
}

blobsRouter.get('/*', async (c) => {
  const { key } = verify(c, 'GET');
  const blob = await c.get('deps').blobs.get(key);
  if (!blob) throw new ApiError(404, 'No such blob.', { code: 'blob_not_found' });
  return new Response(blob.body, {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
  });
});

blobsRouter.put('/*', async (c) => {
  const { key, sha256 } = verify(c, 'PUT');
  const deps = c.get('deps');
  const max = deps.config.limits.maxBlobBytes;
  if (Number(c.req.header('content-length') ?? 0) > max)
    throw new ApiError(413, `Blob larger than ${max} bytes.`, { code: 'blob_too_large' });
  const refusal = key.startsWith('tenant-models/') ? await modelUploadRefusal(deps, key) : await checkpointUploadRefusal(deps.database.db, key);
  if (refusal) throw new ApiError(403, `Upload refused: ${refusal}.`, { code: 'upload_closed' });
  if (await deps.blobs.head(key)) throw blobExists(key);
  const body = c.req.raw.body ?? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() });
  try {
    // A URL signed with the content's sha256 stores only that content (as R2 checks a presigned PUT's checksum).
    const info = await deps.blobs.put(key, body, { maxBytes: max, ifAbsent: true, ...(sha256 ? { sha256 } : {}) });
    return c.json({ key, bytes: info.size, sha256: info.sha256 }, 200);
  } catch (err) {
    if (err instanceof BlobTooLargeError) throw new ApiError(413, `Blob larger than ${max} bytes.`, { code: 'blob_too_large' });
    if (err instanceof BlobExistsError) throw blobExists(key);
    if (err instanceof BlobDigestMismatchError)
      throw new ApiError(400, `Upload refused: the ${err.message}, which the URL was signed for.`, { code: 'blob_sha256_mismatch' });
    throw err;
  }
});

const blobExists = (key: string) =>
  new ApiError(409, `Blob '${key}' is already written; blobs are write-once.`, { code: 'blob_exists' });
