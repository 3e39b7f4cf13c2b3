/**
 * Base models of the Node deployment: every folder under MODELS_DIR (default ./models) that holds a manifest.json
 * (docs/CONTRACTS.md "Model folder") is offered as a base model. Its id is the manifest's `id`, else its `base`,
 * else the folder name (models/tiny with `"base": "tiny-arith"` -> "tiny-arith"). Its files are copied into the
 * blob store under `models/<id>/` (skipped when already there with the same size and hash), so workers and
 * engines download them through signed URLs exactly like checkpoints.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BaseModel, BlobStore } from '../ports';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export async function loadBaseModels(modelsDir: string, blobs: BlobStore): Promise<BaseModel[]> {
  const entries = await readdir(modelsDir, { withFileTypes: true }).catch(() => []);
  const models: BaseModel[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory()) continue;
    const folder = join(modelsDir, entry.name);
    const manifestText = await readFile(join(folder, 'manifest.json'), 'utf8').catch(() => null);
    if (manifestText === null) continue;
    const manifest = JSON.parse(manifestText) as Record<string, unknown>;
    const id = String(manifest.id ?? manifest.base ?? entry.name);
    if (!ID_RE.test(id)) throw new Error(`${folder}/manifest.json: model id '${id}' is not a plain name`);
    if (models.some((m) => m.id === id)) throw new Error(`${folder}: model id '${id}' is used twice`);
    const declared = (manifest.files ?? {}) as Record<string, string>;
    const blobPrefix = `models/${id}/`;
    const files: BaseModel['files'] = [];
    for (const f of (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!f.isFile() || !ID_RE.test(f.name)) continue;
      const path = join(folder, f.name);
      const size = (await stat(path)).size;
      const existing = await blobs.head(`${blobPrefix}${f.name}`);
      if (existing && existing.size === size && declared[f.name] === existing.sha256) {
        files.push({ name: f.name, bytes: size, sha256: existing.sha256 });
        continue;
      }
      const info = await blobs.put(`${blobPrefix}${f.name}`, Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>);
      if (declared[f.name] && declared[f.name] !== info.sha256)
        throw new Error(`${path}: sha256 ${info.sha256} differs from manifest.json (${declared[f.name]})`);
      files.push({ name: f.name, bytes: info.size, sha256: info.sha256 });
    }
    const created = Math.floor((await stat(join(folder, 'manifest.json'))).mtimeMs / 1000);
    models.push({ id, ownedBy: 'system', created, manifest, files, blobPrefix });
  }
  return models;
}
