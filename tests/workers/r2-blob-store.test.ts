/**
 * The R2 blob store adapter against a real (local) R2 bucket inside workerd, and its presigned URLs against an
 * independent SigV4 computation written from AWS's specification (not from aws4fetch).
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { R2BlobStore, r2PresignedUrlSigner } from '../../src/adapters/r2-blob-store';
import { BlobDigestMismatchError, BlobTooLargeError } from '../../src/lib/streams';
import { checksumHeaders } from '../../src/adapters/signed-urls';

const MiB = 1024 * 1024;
const enc = new TextEncoder();

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? enc.encode(data) : data;
  const digest = await crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function content(size: number, salt = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 11) + salt) & 0xff;
  return out;
}

/** A stream of unknown length delivering `data` in uneven chunks, optionally erroring after `failAfter` bytes. */
function chunked(data: Uint8Array, opts: { failAfter?: number } = {}): ReadableStream<Uint8Array> {
  let offset = 0;
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (opts.failAfter !== undefined && offset >= opts.failAfter) {
        controller.error(new Error('client went away'));
        return;
      }
      if (offset >= data.length) {
        controller.close();
        return;
      }
      const n = Math.min(data.length - offset, [65_536, 1_000_003, 7, 300_000][i++ % 4]!);
      controller.enqueue(data.slice(offset, offset + n));
      offset += n;
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const key = (name: string) => `tests/${crypto.randomUUID()}/${name}`;

describe('R2BlobStore', () => {
  const store = new R2BlobStore(env.BLOBS, { partSize: 5 * MiB });

  it('keeps_the_expected_sha256_of_a_multipart_upload_so_head_never_rereads_it', async () => {
    const k = key('model.safetensors');
    const data = content(11 * MiB, 3);
    const sha256 = await sha256Hex(data);
    expect(await store.put(k, chunked(data), { sha256 })).toEqual({ size: data.length, sha256 });
    const object = await env.BLOBS.head(k);
    expect(object?.checksums.sha256).toBeUndefined(); // R2 keeps no checksum for a multipart object ...
    expect(object?.customMetadata?.sha256).toBe(sha256); // ... so the expected hash rides along as metadata
    expect(await store.head(k)).toEqual({ size: data.length, sha256 });
  });

  it('refuses_content_whose_sha256_differs_from_the_expected_one_and_stores_nothing', async () => {
    for (const size of [1000, 11 * MiB]) {
      const k = key('model.safetensors');
      const err = await store.put(k, chunked(content(size)), { sha256: 'ab'.repeat(32) }).catch((e) => e);
      expect(err).toBeInstanceOf(BlobDigestMismatchError);
      expect(await env.BLOBS.head(k)).toBeNull();
    }
  });

  it('stores_a_small_stream_with_size_and_sha256_read_back_by_get_and_head', async () => {
    const k = key('train.jsonl');
    const data = enc.encode('{"prompt":"1+1?","answer":2}\n'.repeat(100));
    const info = await store.put(k, chunked(data), { contentType: 'application/jsonl' });
    expect(info).toEqual({ size: data.length, sha256: await sha256Hex(data) });
    const got = await store.get(k);
    expect(got?.size).toBe(data.length);
    expect(await readAll(got!.body)).toEqual(data);
    expect(await store.head(k)).toEqual(info);
    expect((await env.BLOBS.head(k))?.httpMetadata?.contentType).toBe('application/jsonl');
  });

  it('streams_a_body_longer_than_one_part_as_a_multipart_upload', async () => {
    const k = key('model.safetensors');
    const data = content(11 * MiB + 12_345);
    const info = await store.put(k, chunked(data));
    expect(info).toEqual({ size: data.length, sha256: await sha256Hex(data) });
    const stored = await readAll((await store.get(k))!.body);
    expect(stored.length).toBe(data.length);
    expect(await sha256Hex(stored)).toBe(info.sha256);
    // R2 keeps no checksum for multipart objects: head hashes the stored bytes, which must match what put saw.
    expect(await store.head(k)).toEqual(info);
  });

  it('rejects_a_body_over_max_bytes_and_stores_nothing', async () => {
    const small = key('small');
    await expect(store.put(small, chunked(content(1000)), { maxBytes: 999 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await store.head(small)).toBeNull();
    // Over the limit only after a first part went to R2: the multipart upload is aborted.
    const big = key('big');
    await expect(store.put(big, chunked(content(6 * MiB)), { maxBytes: 5.5 * MiB })).rejects.toBeInstanceOf(
      BlobTooLargeError,
    );
    expect(await store.head(big)).toBeNull();
    expect(await env.BLOBS.get(big)).toBeNull();
  });

  it('keeps_the_previous_content_when_an_overwriting_stream_fails', async () => {
    const k = key('ckpt');
    const first = content(2000, 1);
    const info = await store.put(k, chunked(first));
    await expect(store.put(k, chunked(content(6 * MiB, 2), { failAfter: 5.5 * MiB }))).rejects.toThrow('client went away');
    await expect(store.put(k, chunked(content(3000, 3), { failAfter: 1000 }))).rejects.toThrow('client went away');
    expect(await store.head(k)).toEqual(info);
    expect(await readAll((await store.get(k))!.body)).toEqual(first);
  });

  it('overwrites_and_deletes', async () => {
    const k = key('x');
    await store.put(k, chunked(enc.encode('one')));
    const second = await store.put(k, chunked(enc.encode('second')));
    expect(await store.head(k)).toEqual(second);
    await store.delete(k);
    expect(await store.get(k)).toBeNull();
    expect(await store.head(k)).toBeNull();
    await store.delete(k); // absent: not an error
  });

  it('refuses_parts_smaller_than_r2_allows', () => {
    expect(() => new R2BlobStore(env.BLOBS, { partSize: MiB })).toThrow(RangeError);
  });
});

// --- SigV4 query-string signing, from the AWS specification ("Authenticating Requests: Using Query Parameters").
async function hmac(keyBytes: ArrayBuffer | Uint8Array, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey('raw', keyBytes as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return crypto.subtle.sign('HMAC', k, enc.encode(data));
}
const uriEncode = (s: string) =>
  [...enc.encode(s)]
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');

async function expectedSignature(url: URL, method: string, secret: string, headers: Record<string, string> = {}): Promise<string> {
  const params = [...url.searchParams].filter(([k]) => k !== 'X-Amz-Signature');
  const query = params
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const path = decodeURIComponent(url.pathname).split('/').map(uriEncode).join('/');
  const signed = [['host', url.host], ...Object.entries(headers)].sort(([a], [b]) => (a < b ? -1 : 1));
  const canonicalHeaders = signed.map(([k, v]) => `${k}:${v}\n`).join('');
  const canonical = [method, path, query, canonicalHeaders, signed.map(([k]) => k).join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const date = url.searchParams.get('X-Amz-Date')!;
  const scope = `${date.slice(0, 8)}/auto/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, await sha256Hex(canonical)].join('\n');
  let signingKey: ArrayBuffer = await hmac(enc.encode(`AWS4${secret}`), date.slice(0, 8));
  for (const part of ['auto', 's3', 'aws4_request']) signingKey = await hmac(signingKey, part);
  const sig = await hmac(signingKey, toSign);
  return [...new Uint8Array(sig)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

describe('r2PresignedUrlSigner', () => {
  const credentials = {
    accountId: '0123456789abcdef0123456789abcdef',
    accessKeyId: 'AKIDEXAMPLE0123456789',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    bucketName: 'soft-reasoning-api-blobs',
  };
  const now = Date.UTC(2026, 10, 27, 21, 5, 9);
  const signer = r2PresignedUrlSigner(credentials, { now: () => now });

  for (const method of ['GET', 'PUT'] as const) {
    it(`presigns_a_${method}_url_to_the_r2_s3_endpoint_with_a_valid_sigv4_signature`, async () => {
      const objectKey = 'checkpoints/ftjob-01abc/step-10/model safetensors+v1.bin';
      const signed = new URL(
        await signer.sign({ key: objectKey, method, expiresAt: now + 900_000, origin: 'http://ignored' }),
      );
      expect(signed.origin).toBe(`https://${credentials.accountId}.r2.cloudflarestorage.com`);
      expect(decodeURIComponent(signed.pathname)).toBe(`/${credentials.bucketName}/${objectKey}`);
      expect(signed.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
      expect(signed.searchParams.get('X-Amz-Credential')).toBe(`${credentials.accessKeyId}/20261127/auto/s3/aws4_request`);
      expect(signed.searchParams.get('X-Amz-Date')).toBe('20261127T210509Z');
      expect(signed.searchParams.get('X-Amz-Expires')).toBe('900');
      expect(signed.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
      expect(signed.searchParams.get('X-Amz-Signature')).toBe(
        await expectedSignature(signed, method, credentials.secretAccessKey),
      );
    });
  }

  it('binds_a_put_to_its_sha256_through_signed_checksum_headers', async () => {
    const body = enc.encode('the checkpoint bytes');
    const hex = await sha256Hex(body);
    const raw = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
    const base64 = btoa(String.fromCharCode(...raw));
    const signed = new URL(await signer.sign({ key: 'a/model.safetensors', method: 'PUT', expiresAt: now + 60_000, origin: '', sha256: hex }));
    expect(signed.searchParams.get('X-Amz-SignedHeaders')).toBe('host;x-amz-checksum-sha256;x-amz-meta-sha256');
    const headers = { 'x-amz-checksum-sha256': base64, 'x-amz-meta-sha256': hex };
    expect(checksumHeaders(hex)).toEqual(headers);
    expect(signed.searchParams.get('X-Amz-Signature')).toBe(await expectedSignature(signed, 'PUT', credentials.secretAccessKey, headers));
    // another content's hash in the headers does not match the signature: the URL uploads this content only
    const other = await sha256Hex('other bytes');
    expect(signed.searchParams.get('X-Amz-Signature')).not.toBe(
      await expectedSignature(signed, 'PUT', credentials.secretAccessKey, checksumHeaders(other)),
    );
  });

  it('signs_get_and_put_differently', async () => {
    const args = { key: 'a/b', expiresAt: now + 60_000, origin: '' };
    const get = new URL(await signer.sign({ ...args, method: 'GET' }));
    const put = new URL(await signer.sign({ ...args, method: 'PUT' }));
    expect(get.searchParams.get('X-Amz-Signature')).not.toBe(put.searchParams.get('X-Amz-Signature'));
  });

  it('refuses_expiries_in_the_past_or_beyond_seven_days', async () => {
    const args = { key: 'a', method: 'GET' as const, origin: '' };
    await expect(signer.sign({ ...args, expiresAt: now - 1 })).rejects.toThrow(RangeError);
    await expect(signer.sign({ ...args, expiresAt: now + 8 * 24 * 3600_000 })).rejects.toThrow(RangeError);
  });
});
