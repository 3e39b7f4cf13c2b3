/**
 * `/blobs/<key>`: the targets of HMAC-signed URLs (src/adapters/signed-urls.ts). GET streams a blob, PUT streams
 * one in (up to Limits.maxBlobBytes, all-or-nothing). No bearer token: the signature is the credential, for one
 * method on one key until it expires. Not part of the public OpenAPI document.
 */
import { Hono } from 'hono';
import { checkBlobSignature } from '../../adapters/signed-urls';
import { ApiError } from '../../errors';
import { BlobTooLargeError } from '../../lib/streams';
import type { AppEnv } from '../../router';

export const blobsRouter = new Hono<AppEnv>();

function verify(c: import('hono').Context<AppEnv>, method: 'GET' | 'PUT'): string {
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
    nowMs: deps.clock.now(),
  });
  if (problem) throw new ApiError(403, `Signed URL refused: ${problem}.`, { code: 'bad_signature' });
  return key;
}

blobsRouter.get('/*', async (c) => {
  const key = verify(c, 'GET');
  const blob = await c.get('deps').blobs.get(key);
  if (!blob) throw new ApiError(404, 'No such blob.', { code: 'blob_not_found' });
  return new Response(blob.body, {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
  });
});

blobsRouter.put('/*', async (c) => {
  const key = verify(c, 'PUT');
  const deps = c.get('deps');
  const max = deps.config.limits.maxBlobBytes;
  if (Number(c.req.header('content-length') ?? 0) > max)
    throw new ApiError(413, `Blob larger than ${max} bytes.`, { code: 'blob_too_large' });
  const body = c.req.raw.body ?? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() });
  try {
    const info = await deps.blobs.put(key, body, { maxBytes: max });
    return c.json({ key, bytes: info.size, sha256: info.sha256 }, 200);
  } catch (err) {
    if (err instanceof BlobTooLargeError) throw new ApiError(413, `Blob larger than ${max} bytes.`, { code: 'blob_too_large' });
    throw err;
  }
});
