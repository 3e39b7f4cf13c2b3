/**
 * The base models of a Workers deployment: each id of BASE_MODELS is a model folder uploaded to R2 under
 * `models/<id>/` (manifest.json plus the files it lists), by `npm run upload-model -- models/tiny` (scripts/
 * upload-model.ts; `--remote` for the deployed bucket).
 *
 * BASE_MODELS = "*" offers every folder under models/ in the bucket, looked for again every minute, so uploading
 * a new base model needs no redeploy either.
 *
 * Read per isolate: the manifest and a listing per model. A listed model that is not (yet) in the bucket is reported
 * as missing (on /healthz, and as an unknown model), never as a broken deployment: every other route keeps working,
 * and the Workers entry looks again shortly, so an upload takes effect without a redeploy.
 */
import type { BaseModel, BlobStore } from '../ports';

/** Plain names, as in src/entry/base-models.ts (ids and file names). */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class MissingBaseModelError extends Error {}

export interface LoadedBaseModels {
  models: BaseModel[];
  /** `<id>: <why>` for each listed model that could not be loaded. */
  missing: string[];
}

export function baseModelIds(modelIds: string | undefined): string[] {
  return (modelIds ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** BASE_MODELS = "*": every folder under models/ in the bucket is a base model (no redeploy to add one). */
export const EVERY_UPLOADED_MODEL = '*';

async function uploadedModelIds(bucket: R2Bucket): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: 'models/', delimiter: '/', cursor });
    ids.push(...page.delimitedPrefixes.map((p) => p.slice('models/'.length, -1)));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return ids;
}

export async function loadBaseModelsFromR2(bucket: R2Bucket, blobs: BlobStore, modelIds: string | undefined): Promise<LoadedBaseModels> {
  const listed = baseModelIds(modelIds);
  const ids = listed.length === 1 && listed[0] === EVERY_UPLOADED_MODEL ? await uploadedModelIds(bucket) : listed;
  const settled = await Promise.allSettled(ids.map((id) => loadBaseModel(bucket, blobs, id)));
  const out: LoadedBaseModels = { models: [], missing: [] };
  for (const s of settled) {
    if (s.status === 'fulfilled') out.models.push(s.value);
    else if (s.reason instanceof MissingBaseModelError) out.missing.push(s.reason.message);
    else throw s.reason;
  }
  return out;
}

/** Like the Node loader (src/entry/base-models.ts): every file of the folder is offered, hashes from manifest.json. */
async function loadBaseModel(bucket: R2Bucket, blobs: BlobStore, id: string): Promise<BaseModel> {
  if (!ID_RE.test(id)) throw new MissingBaseModelError(`${id}: not a plain name`);
  const blobPrefix = `models/${id}/`;
  const object = await bucket.get(`${blobPrefix}manifest.json`);
  if (!object) throw new MissingBaseModelError(`${id}: no ${blobPrefix}manifest.json in the bucket (npm run upload-model)`);
  const manifest = (await object.json()) as Record<string, unknown>;
  const declared = (manifest.files ?? {}) as Record<string, string>;
  const stored = new Map<string, number>();
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: blobPrefix, cursor });
    for (const o of page.objects) stored.set(o.key.slice(blobPrefix.length), o.size);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  // manifest.json lists its files as a name -> sha256 map (or, in older folders, as a plain list of names)
  const names = Array.isArray(declared) ? (declared as string[]) : Object.keys(declared);
  for (const name of names) {
    if (!stored.has(name)) throw new MissingBaseModelError(`${id}: ${blobPrefix}${name} is missing`);
  }
  const hashes = Array.isArray(declared) ? {} : declared;
  const files: BaseModel['files'] = [];
  for (const [name, bytes] of [...stored].sort(([a], [b]) => a.localeCompare(b))) {
    if (!ID_RE.test(name)) continue;
    // manifest.json cannot list its own hash: read it from the bucket (the upload script stores every file's)
    const sha256 = hashes[name] ?? (await blobs.head(`${blobPrefix}${name}`))?.sha256;
    if (!sha256) throw new MissingBaseModelError(`${id}: ${blobPrefix}${name} vanished while loading`);
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
