/**
 * HMAC-signed, expiring URLs for the app's own `/blobs/<key>` routes (src/routes/blobs): the Node deployment's
 * answer to R2 presigned URLs. A URL is `<origin>/blobs/<key>?method=GET|PUT&exp=<unix seconds>[&sha256=<hex>]&sig=<hex>`
 * where sig = HMAC-SHA256(secret, `<method>\n<key>\n<exp>[\n<sha256>]`). Anyone holding the URL may do that one
 * thing until `exp`; a PUT URL with sha256 stores only content with that hash (the route checks it, as R2 and S3
 * check the x-amz-checksum-sha256 header of a presigned PUT).
 */
import { createHmac } from 'node:crypto';
import { timingSafeEqualStr } from '../lib/hash';
import type { BlobUrlSigner } from '../ports';

export function blobSignature(secret: string, method: string, key: string, exp: number, sha256?: string): string {
  return createHmac('sha256', secret)
    .update(`${method}\n${key}\n${exp}${sha256 ? `\n${sha256}` : ''}`)
    .digest('hex');
}

const hexToBase64 = (hex: string) => btoa(String.fromCharCode(...(hex.match(/../g) ?? []).map((h) => parseInt(h, 16))));

/**
 * The headers an upload to a URL signed with `sha256` sends: S3's and R2's checksum header (the store verifies the
 * content against it and refuses a mismatch) and the hash as object metadata (what `head` reads back later, so
 * registering an upload never re-reads it). Both are part of a presigned URL's signature.
 */
export function checksumHeaders(sha256: string): Record<string, string> {
  return { 'x-amz-checksum-sha256': hexToBase64(sha256), 'x-amz-meta-sha256': sha256 };
}

export function createHmacUrlSigner(secret: string): BlobUrlSigner {
  return {
    async sign({ key, method, expiresAt, origin, sha256 }) {
      const exp = Math.floor(expiresAt / 1000);
      const path = key.split('/').map(encodeURIComponent).join('/');
      const digest = method === 'PUT' && sha256 ? `&sha256=${sha256}` : '';
      return `${origin}/blobs/${path}?method=${method}&exp=${exp}${digest}&sig=${blobSignature(secret, method, key, exp, method === 'PUT' ? sha256 : undefined)}`;
    },
  };
}

/** Why a signed request is refused, or null when it is valid now. */
export function checkBlobSignature(
  secret: string,
  args: { method: string; key: string; exp: string | undefined; sig: string | undefined; sha256?: string; nowMs: number },
): string | null {
  const exp = Number(args.exp);
  if (!args.exp || !Number.isInteger(exp) || !args.sig) return 'missing or malformed signature';
  if (exp * 1000 < args.nowMs) return 'signed URL expired';
  if (!timingSafeEqualStr(blobSignature(secret, args.method, args.key, exp, args.sha256), args.sig)) return 'bad signature';
  return null;
}
