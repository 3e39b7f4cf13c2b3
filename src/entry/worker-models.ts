/**
 * The base models of a Workers deployment: each id of BASE_MODELS is a model folder uploaded to R2 under
 * `models/<id>/` (manifest.json plus the files it lists), e.g.
 *
 *   for f in models/tiny/*; do
 *     npx wrangler r2 object put soft-reasoning-api-blobs/models/tiny-arith/$(basename $f) --file $f --remote
 *   done
 *
 * Read once per isolate: the manifest and a listing per model. A listed model that is not in the bucket is a
 * deployment error and is reported as such, not skipped.
 */
import type { BaseModel, BlobStore } from '../ports';

/** Plain names, as in src/entry/base-models.ts (ids and file names). */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class MissingBaseModelError extends Error {}

export async function loadBaseModelsFromR2(
  bucket: R2Bucket,
  blobs: BlobStore,
  modelIds: string | undefined,
): Promise<BaseModel[]> {
  const ids = (modelIds ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return Promise.all(ids.map((id) => loadBaseModel(bucket, blobs, id)));
}

/** Like the Node loader (src/entry/base-models.ts): every file of the folder is offered, hashes from manifest.json. */
async function loadBaseModel(bucket: R2Bucket, blobs: BlobStore, id: string): Promise<BaseModel> {
  if (!ID_RE.test(id)) throw new MissingBaseModelError(`base model id '${id}' is not a plain name`);
  const blobPrefix = `models/${id}/`;
  const object = await bucket.get(`${blobPrefix}manifest.json`);
  if (!object) throw new MissingBaseModelError(`base model '${id}': no ${blobPrefix}manifest.json in the bucket`);
  const manifest = (await object.json()) as Record<string, unknown>;
  const declared = (manifest.files ?? {}) as Record<string, string>;
  const stored = new Map<string, number>();
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: blobPrefix, cursor });
    for (const o of page.objects) stored.set(o.key.slice(blobPrefix.length), o.size);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  for (const name of Object.keys(declared)) {
    if (!stored.has(name)) throw new MissingBaseModelError(`base model '${id}': ${blobPrefix}${name} is missing`);
  }
  const files: BaseModel['files'] = [];
  for (const [name, bytes] of [...stored].sort(([a], [b]) => a.localeCompare(b))) {
    if (!ID_RE.test(name)) continue;
    // manifest.json cannot list its own hash: hash it (and any other undeclared file) from the bucket.
    const sha256 = declared[name] ?? (await blobs.head(`${blobPrefix}${name}`))?.sha256;
    if (!sha256) throw new MissingBaseModelError(`base model '${id}': ${blobPrefix}${name} vanished while loading`);
    files.push({ name, bytes, sha256 });
  }
  return {
    id,
    ownedBy: 'system',
    created: Math.floor(object.uploaded.getTime() / 1000),
    manifest,
    files,
    blobPrefix,
  };
}
