/**
 * `BlobStore` port on Node: one file per key under a root folder. Writes stream to a temp file in the same
 * folder and are renamed into place only when complete, so a failed or aborted upload leaves nothing behind.
 * The SHA-256 of each blob is computed while it is written and kept next to it (`<file>.sha256`).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashingStream } from '../lib/hash';
import { limitStream } from '../lib/streams';
import type { BlobInfo, BlobStore } from '../ports';

const KEY_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

export function createLocalBlobStore(root: string): BlobStore {
  const base = resolve(root);
  const pathOf = (key: string) => {
    if (!KEY_RE.test(key) || key.split('/').some((p) => p === '.' || p === '..')) throw new Error(`bad blob key ${key}`);
    const p = resolve(base, key);
    if (!p.startsWith(base + sep)) throw new Error(`bad blob key ${key}`);
    return p;
  };

  return {
    async put(key, body, opts = {}) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      const hasher = hashingStream();
      let stream = body.pipeThrough(hasher.stream);
      if (opts.maxBytes !== undefined) stream = stream.pipeThrough(limitStream(opts.maxBytes));
      try {
        await pipeline(Readable.fromWeb(stream as never), createWriteStream(tmp));
        const info: BlobInfo = { size: hasher.bytes, sha256: hasher.digest() };
        await writeFile(`${path}.sha256`, `${info.sha256} ${info.size}\n`);
        await rename(tmp, path);
        return info;
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    },
    async get(key) {
      const path = pathOf(key);
      const s = await stat(path).catch(() => null);
      if (!s?.isFile()) return null;
      return { body: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>, size: s.size };
    },
    async head(key) {
      const path = pathOf(key);
      const s = await stat(path).catch(() => null);
      if (!s?.isFile()) return null;
      const meta = await readFile(`${path}.sha256`, 'utf8').catch(() => null);
      const [sha256, size] = meta?.trim().split(' ') ?? [];
      if (sha256 && Number(size) === s.size) return { size: s.size, sha256 };
      // Sidecar missing or stale (file replaced by hand): hash the content once and record it.
      const hasher = hashingStream();
      await pipeline(
        Readable.fromWeb((Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>).pipeThrough(hasher.stream) as never),
        new Writable({ write: (_c, _e, cb) => cb() }),
      );
      const info = { size: hasher.bytes, sha256: hasher.digest() };
      await writeFile(`${path}.sha256`, `${info.sha256} ${info.size}\n`);
      return info;
    },
    async delete(key) {
      const path = pathOf(key);
      await rm(path, { force: true });
      await rm(`${path}.sha256`, { force: true });
    },
  };
}

export const blobRootOf = (dataDir: string) => join(dataDir, 'blobs');
