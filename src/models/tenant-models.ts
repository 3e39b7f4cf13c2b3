/**
 * Tenant-owned base models: a tenant uploads a model folder (the output of `npm run import-model`, docs/MODELS.md)
 * through signed PUT URLs, as workers upload checkpoints, then serves and fine-tunes it like a deployment base model.
 * Only its tenant sees it; its id is unique across tenants (engines and model caches key models by id).
 *
 *   start    declare the files (name, bytes, sha256) -> a row `uploading` + one signed PUT URL per file, each bound to
 *            its sha256 (the blob store refuses other content) and open only while the row is `uploading`
 *   complete every declared blob present with its size and hash, config.json a supported architecture (Qwen2, Llama),
 *            manifest.json a model manifest -> `ready`; otherwise a 400 naming the file
 *
 * Limits (explicit, TenantModelLimits): files per model, bytes per model, models per tenant; file names from
 * MODEL_FILE_NAMES (the files the trainer and the engines read); JSON and template files at most MAX_TEXT_FILE_BYTES
 * (the API reads them whole).
 */
import { and, eq, sql } from 'drizzle-orm';
import { tenantModels, type TenantModelRow } from '../db/schema';
import { ApiError } from '../errors';
import type { BaseModel, Deps } from '../ports';
import { modelShape } from './memory-estimate';

export interface TenantModelLimits {
  maxFiles: number;
  maxBytes: number;
  maxModelsPerTenant: number;
}
export const DEFAULT_TENANT_MODEL_LIMITS: TenantModelLimits = { maxFiles: 16, maxBytes: 20 * 1024 ** 3, maxModelsPerTenant: 8 };

export const MODEL_FILE_NAMES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'model.safetensors',
  'model.onnx',
  'model.onnx.data',
  'model.int8.onnx',
  'model.int8.onnx.data',
  'manifest.json',
] as const;
export const REQUIRED_MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors', 'manifest.json'];
const SUPPORTED_MODEL_TYPES = ['qwen2', 'llama'];
export const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** config.json, tokenizer files, manifest.json: read whole by the API at completion and job creation. */
export const MAX_TEXT_FILE_BYTES = 64 * 1024 ** 2;

export interface DeclaredFile {
  name: string;
  bytes: number;
  sha256: string;
}

const bad = (param: string, message: string, code = 'invalid_model_upload') => new ApiError(400, `${param}: ${message}`, { param, code });

function limitsOf(deps: Deps): TenantModelLimits {
  return deps.config.tenantModelLimits ?? DEFAULT_TENANT_MODEL_LIMITS;
}

/** Check the declaration and open the upload; returns the row and the signed PUT URL of each file. */
export async function startModelUpload(deps: Deps, tenantId: string, id: string, files: DeclaredFile[], origin: string) {
  const limits = limitsOf(deps);
  const { db } = deps.database;
  if (deps.config.baseModels.some((m) => m.id === id) || (await db.select({ id: tenantModels.id }).from(tenantModels).where(eq(tenantModels.id, id)).get()))
    throw new ApiError(409, `id: the model id '${id}' is taken; choose another`, { param: 'id', code: 'model_exists' });
  if (files.length > limits.maxFiles) throw bad('files', `${files.length} files; at most ${limits.maxFiles}`);
  const names = new Set<string>();
  files.forEach((f, i) => {
    if (!(MODEL_FILE_NAMES as readonly string[]).includes(f.name))
      throw bad(`files[${i}].name`, `'${f.name}' is not a model folder file (${MODEL_FILE_NAMES.join(', ')})`);
    if (names.has(f.name)) throw bad(`files[${i}].name`, `'${f.name}' is listed twice`);
    names.add(f.name);
    if (/\.(json|jinja)$/.test(f.name) && f.bytes > MAX_TEXT_FILE_BYTES)
      throw new ApiError(413, `files[${i}].bytes: ${f.name} has ${f.bytes} bytes; text files may have at most ${MAX_TEXT_FILE_BYTES}`, { param: `files[${i}].bytes`, code: 'model_too_large' });
    if (f.bytes > deps.config.limits.maxBlobBytes)
      throw new ApiError(413, `files[${i}].bytes: ${f.name} has ${f.bytes} bytes; a file may have at most ${deps.config.limits.maxBlobBytes}`, { param: `files[${i}].bytes`, code: 'model_too_large' });
  });
  const missing = REQUIRED_MODEL_FILES.filter((n) => !names.has(n));
  if (!names.has('model.onnx') && !names.has('model.int8.onnx')) missing.push('model.onnx');
  if (missing.length) throw bad('files', `a model folder needs ${missing.join(', ')}`);
  const total = files.reduce((s, f) => s + f.bytes, 0);
  if (total > limits.maxBytes)
    throw new ApiError(413, `files: ${total} bytes in all; a tenant model may have at most ${limits.maxBytes}`, { param: 'files', code: 'model_too_large' });
  const owned = await db.select({ n: sql<number>`count(*)` }).from(tenantModels).where(eq(tenantModels.tenantId, tenantId)).get();
  if ((owned?.n ?? 0) >= limits.maxModelsPerTenant)
    throw new ApiError(400, `id: the organization already has ${limits.maxModelsPerTenant} models (the limit)`, { param: 'id', code: 'model_limit' });
  const now = deps.clock.now();
  const blobPrefix = `tenant-models/${deps.ids.next('mupl')}/`;
  const row = { id, tenantId, status: 'uploading' as const, files, bytes: total, blobPrefix, manifest: null, createdAt: now, updatedAt: now };
  await db.insert(tenantModels).values(row);
  const expiresAt = now + deps.config.signedUrlSeconds * 1000;
  const urls = await Promise.all(
    files.map(async (f) => ({ name: f.name, url: await deps.blobUrls.sign({ key: `${blobPrefix}${f.name}`, method: 'PUT', expiresAt, origin, sha256: f.sha256 }) })),
  );
  return { row: row as TenantModelRow, urls, expiresAt };
}

/** Why a signed PUT to a tenant-model key is refused now, or null: only declared files of an `uploading` model. */
export async function modelUploadRefusal(deps: Deps, key: string): Promise<string | null> {
  const slash = key.lastIndexOf('/');
  const prefix = key.slice(0, slash + 1);
  const row = await deps.database.db.select().from(tenantModels).where(eq(tenantModels.blobPrefix, prefix)).get();
  if (!row) return 'this key does not accept uploads';
  if (row.status !== 'uploading') return `model ${row.id} is already complete`;
  if (!row.files.some((f) => f.name === key.slice(slash + 1))) return 'this file was not declared';
  return null;
}

async function readJson(deps: Deps, key: string, name: string): Promise<Record<string, unknown>> {
  const blob = await deps.blobs.get(key);
  try {
    const value = JSON.parse(await new Response(blob!.body).text());
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch {
    // answered below
  }
  throw bad('files', `${name} is not a JSON object`);
}

/** Verify the uploaded files and make the model `ready`. */
export async function completeModelUpload(deps: Deps, tenantId: string, id: string): Promise<TenantModelRow> {
  const { db } = deps.database;
  const row = await getTenantModel(deps, tenantId, id);
  if (row.status === 'ready') return row;
  for (const f of row.files) {
    const head = await deps.blobs.head(`${row.blobPrefix}${f.name}`);
    if (!head) throw bad('files', `${f.name} was not uploaded`);
    if (head.size !== f.bytes || head.sha256 !== f.sha256)
      throw bad('files', `${f.name} has ${head.size} bytes with sha256 ${head.sha256}, not the ${f.bytes} bytes with sha256 ${f.sha256} declared`);
  }
  const config = await readJson(deps, `${row.blobPrefix}config.json`, 'config.json');
  if (!SUPPORTED_MODEL_TYPES.includes(String(config.model_type)))
    throw bad('files', `config.json: model_type '${String(config.model_type)}' is not supported (${SUPPORTED_MODEL_TYPES.join(', ')}); import the model with npm run import-model`);
  if (!modelShape(config)) throw bad('files', 'config.json: lacks the sizes of a Qwen2 / Llama model (hidden_size, num_hidden_layers, ...)');
  const manifest = await readJson(deps, `${row.blobPrefix}manifest.json`, 'manifest.json');
  if (manifest.format !== 'softgrpo-model/1') throw bad('files', "manifest.json: format is not 'softgrpo-model/1'; write it with npm run import-model");
  const now = deps.clock.now();
  const done = await db
    .update(tenantModels)
    .set({ status: 'ready', manifest, updatedAt: now })
    .where(and(eq(tenantModels.id, id), eq(tenantModels.tenantId, tenantId), eq(tenantModels.status, 'uploading')))
    .returning()
    .get();
  return done ?? getTenantModel(deps, tenantId, id);
}

export async function getTenantModel(deps: Deps, tenantId: string, id: string): Promise<TenantModelRow> {
  const row = await deps.database.db
    .select()
    .from(tenantModels)
    .where(and(eq(tenantModels.id, id), eq(tenantModels.tenantId, tenantId)))
    .get();
  if (!row) throw new ApiError(404, `No model upload '${id}'.`, { param: 'model', code: 'model_not_found', type: 'not_found_error' });
  return row;
}

/** Remove the model and its files. Queued jobs on it then fail at claim (model_missing); fine-tuned checkpoints of
 * finished jobs keep their own files and stay servable. */
export async function deleteTenantModel(deps: Deps, tenantId: string, id: string): Promise<void> {
  const row = await getTenantModel(deps, tenantId, id);
  await deps.database.db.delete(tenantModels).where(and(eq(tenantModels.id, id), eq(tenantModels.tenantId, tenantId)));
  await Promise.all(row.files.map((f) => deps.blobs.delete(`${row.blobPrefix}${f.name}`)));
}

export async function listTenantModels(deps: Deps, tenantId: string): Promise<TenantModelRow[]> {
  return deps.database.db.select().from(tenantModels).where(eq(tenantModels.tenantId, tenantId)).orderBy(tenantModels.createdAt);
}

function asBaseModel(row: TenantModelRow): BaseModel {
  return { id: row.id, ownedBy: row.tenantId, created: Math.floor(row.createdAt / 1000), manifest: row.manifest ?? {}, files: row.files, blobPrefix: row.blobPrefix };
}

/** The base model `id` as `tenantId` sees it: the deployment's, else the tenant's own once ready; null otherwise. */
export async function findBaseModel(deps: Deps, tenantId: string, id: string): Promise<BaseModel | null> {
  const system = deps.config.baseModels.find((m) => m.id === id);
  if (system) return system;
  const row = await deps.database.db
    .select()
    .from(tenantModels)
    .where(and(eq(tenantModels.id, id), eq(tenantModels.tenantId, tenantId), eq(tenantModels.status, 'ready')))
    .get();
  return row ? asBaseModel(row) : null;
}

/** The tenant's ready models as base models (for model lists). */
export async function tenantBaseModels(deps: Deps, tenantId: string): Promise<BaseModel[]> {
  return (await listTenantModels(deps, tenantId)).filter((r) => r.status === 'ready').map(asBaseModel);
}
