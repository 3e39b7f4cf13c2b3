/**
 * The BlobStore port on a Cloudflare R2 bucket binding, and S3 presigned URLs for R2 (the Workers adapters).
 *
 * Uploads are streamed and all-or-nothing: the body is read in fixed-size parts; a body that ends within the
 * first part is stored with one put (R2 verifies and keeps its SHA-256), a longer one becomes a multipart upload
 * that is completed only after the last byte (at most one part is held in memory, never the whole upload) and
 * aborted on any error, so a failed or oversized upload leaves nothing behind. The SHA-256 is computed on the fly
 * (DigestStream) and returned by `put`; `head` reads it from R2's stored checksum, else from the `sha256` custom
 * metadata that an expected hash leaves (a multipart `put` given `sha256`, or a presigned PUT signed with it,
 * whose checksum header R2 verified); only an object with neither (a large upload of unknown hash through the
 * Worker) is hashed from its stream.
 *
 * Signed URLs: `r2PresignedUrlSigner` presigns S3 SigV4 URLs against R2's S3 endpoint (aws4fetch), so clients move
 * large artifacts straight to and from R2. A PUT signed with a sha256 carries `x-amz-checksum-sha256` and
 * `x-amz-meta-sha256` as signed headers (src/adapters/signed-urls.ts checksumHeaders): the store refuses content
 * with another hash, and registering the upload reads the hash back without reading the object. It needs an R2 API
 * token pair; deployments without one configure the Worker's own HMAC-signed /blobs routes instead (BLOB_URL_MODE
 * in wrangler.toml, wired in src/entry/worker.ts). tests/adapters/presigned-urls.test.ts runs it against a local
 * S3-compatible server (moto).
 */
import { AwsClient } from 'aws4fetch';
import type { BlobInfo, BlobStore, BlobUrlSigner, Clock } from '../ports';
import { BlobDigestMismatchError, BlobExistsError, BlobTooLargeError } from '../lib/streams';
import { checksumHeaders } from './signed-urls';

const MiB = 1024 * 1024;

export interface R2BlobStoreOptions {
  /** Size of every multipart part but the last (R2 requires equal parts of at least 5 MiB). Default 8 MiB. */
  partSize?: number;
}

// workerd's streaming hash (crypto.DigestStream); the DOM lib's Crypto type, also in scope, does not declare it.
const newSha256Stream = () => new (crypto as unknown as { DigestStream: typeof DigestStream }).DigestStream('SHA-256');

const toHex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');

export class R2BlobStore implements BlobStore {
  private readonly partSize: number;

  constructor(
    private readonly bucket: R2Bucket,
    options: R2BlobStoreOptions = {},
  ) {
    this.partSize = options.partSize ?? 8 * MiB;
    if (this.partSize < 5 * MiB) throw new RangeError(`R2 multipart parts must be at least 5 MiB, got ${this.partSize}`);
  }

  async put(
    key: string,
    body: ReadableStream<Uint8Array>,
    opts: { maxBytes?: number; contentType?: string; ifAbsent?: boolean; sha256?: string } = {},
  ): Promise<BlobInfo> {
    const httpMetadata = opts.contentType ? { contentType: opts.contentType } : undefined;
    const customMetadata = opts.sha256 ? { sha256: opts.sha256 } : undefined;
    const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    const reader = body.getReader();
    const digest = newSha256Stream();
    const digestWriter = digest.getWriter();
    let part = new Uint8Array(this.partSize);
    let filled = 0;
    let size = 0;
    let upload: R2MultipartUpload | undefined;
    const parts: R2UploadedPart[] = [];
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > maxBytes) throw new BlobTooLargeError(maxBytes);
        await digestWriter.write(value);
        let offset = 0;
        while (offset < value.byteLength) {
          const n = Math.min(this.partSize - filled, value.byteLength - offset);
          part.set(value.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === this.partSize) {
            upload ??= await this.bucket.createMultipartUpload(key, { httpMetadata, customMetadata });
            parts.push(await upload.uploadPart(parts.length + 1, part));
            part = new Uint8Array(this.partSize);
            filled = 0;
          }
        }
      }
      await digestWriter.close();
      const sha256 = toHex(await digest.digest);
      if (opts.sha256 !== undefined && opts.sha256 !== sha256) throw new BlobDigestMismatchError(opts.sha256, sha256);
      if (!upload) {
        // R2 checks the content against the hash and stores it as the object's checksum (read back by head).
        // With ifAbsent, R2 itself refuses to replace an object (If-None-Match: *), so racing writers cannot both win.
        const onlyIf = opts.ifAbsent ? new Headers({ 'if-none-match': '*' }) : undefined;
        const stored = await this.bucket.put(key, part.subarray(0, filled), { httpMetadata, sha256, onlyIf });
        if (!stored) throw new BlobExistsError(key);
      } else {
        if (filled > 0) parts.push(await upload.uploadPart(parts.length + 1, part.subarray(0, filled)));
        // Multipart completion takes no precondition: checked just before, which leaves a window only between two
        // writers holding upload URLs for the same key at the same moment.
        if (opts.ifAbsent && (await this.bucket.head(key))) throw new BlobExistsError(key);
        await upload.complete(parts);
      }
      return { size, sha256 };
    } catch (err) {
      await upload?.abort().catch(() => undefined);
      await reader.cancel(err).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string): Promise<{ body: ReadableStream<Uint8Array>; size: number } | null> {
    const object = await this.bucket.get(key);
    return object ? { body: object.body, size: object.size } : null;
  }

  async head(key: string): Promise<BlobInfo | null> {
    const object = await this.bucket.head(key);
    if (!object) return null;
    const stored = object.checksums.sha256;
    if (stored) return { size: object.size, sha256: toHex(stored) };
    const declared = object.customMetadata?.sha256;
    if (declared && /^[0-9a-f]{64}$/.test(declared)) return { size: object.size, sha256: declared };
    const content = await this.bucket.get(key);
    if (!content) return null;
    const digest = newSha256Stream();
    await content.body.pipeTo(digest);
    return { size: content.size, sha256: toHex(await digest.digest) };
  }

  async delete(key: string): Promise<void> {
    await this.bucket.delete(key);
  }
}

export interface R2S3Credentials {
  /** Cloudflare account id: the S3 endpoint is https://<accountId>.r2.cloudflarestorage.com. */
  accountId: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucketName: string;
  /** The S3 endpoint; default https://<accountId>.r2.cloudflarestorage.com (R2_ENDPOINT; tests use a local server). */
  endpoint?: string;
}

/** The longest expiry SigV4 presigned URLs allow (7 days). */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** `YYYYMMDDTHHMMSSZ`, the SigV4 X-Amz-Date format. */
const amzDate = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

/**
 * S3 SigV4 presigned URLs (path style, /<bucket>/<key>, region "auto") signed at `clock.now()` and valid until
 * `expiresAt`. `origin` is not used: the URL points at R2, not at this app.
 */
export function r2PresignedUrlSigner(credentials: R2S3Credentials, clock: Clock): BlobUrlSigner {
  const client = new AwsClient({
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    service: 's3',
    region: 'auto',
  });
  const endpoint = (credentials.endpoint ?? `https://${credentials.accountId}.r2.cloudflarestorage.com`).replace(/\/+$/, '');
  const bucketUrl = `${endpoint}/${encodeURIComponent(credentials.bucketName)}`;
  return {
    async sign({ key, method, expiresAt, sha256 }) {
      const now = clock.now();
      const ttlSeconds = Math.ceil((expiresAt - now) / 1000);
      if (!(ttlSeconds >= 1 && ttlSeconds <= MAX_PRESIGN_SECONDS)) {
        throw new RangeError(`presigned URL lifetime must be 1..${MAX_PRESIGN_SECONDS} s, got ${ttlSeconds}`);
      }
      const url = new URL(`${bucketUrl}/${key.split('/').map(encodeURIComponent).join('/')}`);
      url.searchParams.set('X-Amz-Expires', String(ttlSeconds));
      const headers = method === 'PUT' && sha256 ? checksumHeaders(sha256) : {};
      const signed = await client.sign(new Request(url, { method, headers }), { aws: { signQuery: true, datetime: amzDate(now) } });
      return signed.url;
    },
  };
}
