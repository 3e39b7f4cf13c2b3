/**
 * `BlobStore` port on Node: one file per key under a root folder. Writes stream to a temp file in the same
 * folder and are renamed into place only when complete, so a failed or aborted upload leaves nothing behind.
 * The SHA-256 of each blob is computed while it is written and kept next to it (`<file>.sha256`).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashingStream } from '../lib/hash';
import { BlobDigestMismatchError, BlobExistsError, limitStream } from '../lib/streams';
import type { BlobInfo, BlobStore } from '../ports';

/** Blobs are readable by the API's own user only (they hold tenants' data and checkpoints). */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const TMP_SUFFIX = '.tmp';

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
      await mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
      const tmp = `${path}.${crypto.randomUUID()}${TMP_SUFFIX}`;
      const hasher = hashingStream();
      let stream = body.pipeThrough(hasher.stream);
      if (opts.maxBytes !== undefined) stream = stream.pipeThrough(limitStream(opts.maxBytes));
      try {
        await pipeline(Readable.fromWeb(stream as never), createWriteStream(tmp, { mode: FILE_MODE }));
        const info: BlobInfo = { size: hasher.bytes, sha256: hasher.digest() };
        if (opts.sha256 !== undefined && opts.sha256 !== info.sha256) throw new BlobDigestMismatchError(opts.sha256, info.sha256);
        if (opts.ifAbsent) {
          // link() fails with EEXIST when the key holds a blob: atomic, so two racing writers cannot both win. The
          // sidecar is written after the link; a crash in between leaves no sidecar and head() hashes once.
          try {
            await link(tmp, path);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BlobExistsError(key);
            throw err;
          }
          await writeFile(`${path}.sha256`, `${info.sha256} ${info.size}\n`, { mode: FILE_MODE });
          await rm(tmp, { force: true });
          return info;
        }
        await writeFile(`${path}.sha256`, `${info.sha256} ${info.size}\n`, { mode: FILE_MODE });
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
      await writeFile(`${path}.sha256`, `${info.sha256} ${info.size}\n`, { mode: FILE_MODE });
      return info;
    },
    async delete(key) {
      const path = pathOf(key);
      await rm(path, { force: true });
      await rm(`${path}.sha256`, { force: true });
    },
  };
}

/**
 * Removes the temporary files of uploads that a crash interrupted (`<key>.<uuid>.tmp`). Run at start-up, before
 * the API serves: no upload is in flight then, so every temporary file is an orphan. Returns how many it removed.
 */
export async function removeOrphanedUploads(root: string): Promise<number> {
  const entries = await readdir(resolve(root), { recursive: true, withFileTypes: true }).catch(() => []);
  const orphans = entries.filter((e) => e.isFile() && e.name.endsWith(TMP_SUFFIX));
  await Promise.all(orphans.map((e) => rm(join(e.parentPath, e.name), { force: true })));
  return orphans.length;
}

export const blobRootOf = (dataDir: string) => join(dataDir, 'blobs');
