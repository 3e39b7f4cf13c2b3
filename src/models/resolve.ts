/**
 * Model names and where their files are. Base models come from Config.baseModels; fine-tuned ones are a tenant's
 * checkpoints: `ft:<base>:<suffix>:<job_id>` is the job's latest checkpoint, `...:ckpt-<step>` a given one.
 * The engine uses `resolveModel` to find a model folder's blobs (`deps.blobs.get(file.key)`).
 */
import { and, desc, eq } from 'drizzle-orm';
import { checkpoints, jobs, type CheckpointRow, type JobRow } from '../db/schema';
import type { Deps } from '../ports';
import { checkpointModelName, fineTunedModelName, parseFineTunedModelName } from './names';
import { findBaseModel, tenantBaseModels } from './tenant-models';

export interface ResolvedModel {
  id: string;
  kind: 'base' | 'fine-tuned' | 'checkpoint';
  /** Base model id at the root of this model. */
  base: string;
  /** Seconds since the epoch. */
  created: number;
  ownedBy: string;
  jobId: string | null;
  step: number | null;
  files: { name: string; bytes: number; sha256: string; key: string }[];
}

function fromCheckpoint(job: JobRow, c: CheckpointRow, id: string, kind: 'fine-tuned' | 'checkpoint'): ResolvedModel {
  return {
    id,
    kind,
    base: job.model,
    created: Math.floor(c.createdAt / 1000),
    ownedBy: job.tenantId,
    jobId: job.id,
    step: c.step,
    files: c.files.map((f) => ({ ...f, key: `${c.blobPrefix}${f.name}` })),
  };
}

/** The model with this id as `tenantId` sees it, or null (unknown, or another tenant's). */
export async function resolveModel(deps: Deps, tenantId: string, id: string): Promise<ResolvedModel | null> {
  const base = await findBaseModel(deps, tenantId, id); // the deployment's, or the tenant's own upload
  if (base)
    return {
      id: base.id,
      kind: 'base',
      base: base.id,
      created: base.created,
      ownedBy: base.ownedBy,
      jobId: null,
      step: null,
      files: base.files.map((f) => ({ ...f, key: `${base.blobPrefix}${f.name}` })),
    };
  const name = parseFineTunedModelName(id);
  if (!name) return null;
  const { base: baseId, suffix, jobId, step } = name;
  const { db } = deps.database;
  const job = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, jobId), eq(jobs.tenantId, tenantId)))
    .get();
  if (!job || job.model !== baseId || (job.suffix ?? '') !== suffix) return null;
  const ckpt = await db
    .select()
    .from(checkpoints)
    .where(and(eq(checkpoints.jobId, jobId), step === undefined ? undefined : eq(checkpoints.step, step)))
    .orderBy(desc(checkpoints.step))
    .get();
  if (!ckpt) return null;
  return fromCheckpoint(job, ckpt, id, step === undefined ? 'fine-tuned' : 'checkpoint');
}

/** Every model `tenantId` can use: base models, then per job its latest checkpoint and each checkpoint. */
export async function listModels(deps: Deps, tenantId: string): Promise<ResolvedModel[]> {
  const out: ResolvedModel[] = [];
  for (const b of [...deps.config.baseModels, ...(await tenantBaseModels(deps, tenantId))])
    out.push((await resolveModel(deps, tenantId, b.id))!);
  const rows = await deps.database.db
    .select({ job: jobs, ckpt: checkpoints })
    .from(checkpoints)
    .innerJoin(jobs, eq(checkpoints.jobId, jobs.id))
    .where(eq(checkpoints.tenantId, tenantId))
    .orderBy(desc(jobs.id), desc(checkpoints.step));
  let lastJob: string | null = null;
  for (const { job, ckpt } of rows) {
    if (job.id !== lastJob) out.push(fromCheckpoint(job, ckpt, fineTunedModelName(job), 'fine-tuned'));
    lastJob = job.id;
    out.push(fromCheckpoint(job, ckpt, checkpointModelName(job, ckpt.step), 'checkpoint'));
  }
  return out;
}
