/**
 * Names of fine-tuned models: `ft:<base>:<suffix>:<job_id>` is a job's model (its latest checkpoint) and
 * `ft:<base>:<suffix>:<job_id>:ckpt-<step>` one checkpoint of it; the suffix part is empty when the job has none.
 * Written here once, read by the job objects, the worker protocol and model resolution.
 */
import type { JobRow } from '../db/schema';

type Named = Pick<JobRow, 'model' | 'suffix' | 'id'>;

export const fineTunedModelName = (job: Named) => `ft:${job.model}:${job.suffix ?? ''}:${job.id}`;
export const checkpointModelName = (job: Named, step: number) => `${fineTunedModelName(job)}:ckpt-${step}`;

const FT_RE = /^ft:([^:]+):([A-Za-z0-9_-]*):([a-z]+-[0-9a-z]+)(?::ckpt-(\d{1,12}))?$/;

/** The parts of a fine-tuned model name, or null when `name` is not one. `step` is set for a checkpoint's name. */
export function parseFineTunedModelName(name: string): { base: string; suffix: string; jobId: string; step?: number } | null {
  const m = name.match(FT_RE);
  if (!m) return null;
  const [, base, suffix, jobId, step] = m;
  return { base, suffix, jobId, ...(step === undefined ? {} : { step: Number(step) }) };
}
