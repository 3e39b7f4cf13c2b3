/**
 * HMAC-signed, expiring URLs for the app's own `/blobs/<key>` routes (src/routes/blobs): the Node deployment's
 * answer to R2 presigned URLs. A URL is `<origin>/blobs/<key>?method=GET|PUT&exp=<unix seconds>&sig=<hex>` where
 * sig = HMAC-SHA256(secret, `<method>\n<key>\n<exp>`). Anyone holding the URL may do that one thing until `exp`.
 */
import { createHmac } from 'node:crypto';
import { timingSafeEqualStr } from '../lib/hash';
import type { BlobUrlSigner } from '../ports';

export function blobSignature(secret: string, method: string, key: string, exp: number): string {
  return createHmac('sha256', secret).update(`${method}\n${key}\n${exp}`).digest('hex');
}

export function createHmacUrlSigner(secret: string): BlobUrlSigner {
  return {
    async sign({ key, method, expiresAt, origin }) {
      const exp = Math.floor(expiresAt / 1000);
      const path = key.split('/').map(encodeURIComponent).join('/');
      return `${origin}/blobs/${path}?method=${method}&exp=${exp}&sig=${blobSignature(secret, method, key, exp)}`;
    },
  };
}

/** Why a signed request is refused, or null when it is valid now. */
export function checkBlobSignature(
  secret: string,
  args: { method: string; key: string; exp: string | undefined; sig: string | undefined; nowMs: number },
): string | null {
  const exp = Number(args.exp);
  if (!args.exp || !Number.isInteger(exp) || !args.sig) return 'missing or malformed signature';
  if (exp * 1000 < args.nowMs) return 'signed URL expired';
  if (!timingSafeEqualStr(blobSignature(secret, args.method, args.key, exp), args.sig)) return 'bad signature';
  return null;
}
