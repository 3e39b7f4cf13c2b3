/**
 * SHA-256 helpers. `node:crypto` is available on Node and on Workers (nodejs_compat), and unlike Web Crypto it
 * hashes a stream incrementally, so uploads are hashed while they pass through without being buffered.
 */
import { createHash } from 'node:crypto';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A pass-through stream that hashes and counts what flows through it. */
export function hashingStream() {
  const hash = createHash('sha256');
  let bytes = 0;
  let hex: string | null = null;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      bytes += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return {
    stream,
    get bytes() {
      return bytes;
    },
    /** Hex digest; call once the stream has ended. */
    digest(): string {
      hex ??= hash.digest('hex');
      return hex;
    },
  };
}

/** Equal-length comparison without early exit (for tokens and signatures). */
export function timingSafeEqualStr(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
