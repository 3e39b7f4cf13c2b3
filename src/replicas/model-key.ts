/**
 * The key under which a replica caches a model: what the model *is*, not what it was asked as. `ft:...:<job>` names
 * the job's latest checkpoint, which changes as training goes on, so the key is the checkpoint's own name plus a
 * prefix of the weights' SHA-256 (a base model re-uploaded with other weights gets a new key, never a stale cache).
 */
import type { ResolvedModel } from '../models/resolve';

export function modelKey(model: Pick<ResolvedModel, 'id' | 'kind' | 'step' | 'files'>): string {
  const name = model.kind === 'fine-tuned' ? `${model.id}:ckpt-${model.step}` : model.id;
  const weights = model.files.find((f) => f.name === 'model.safetensors') ?? model.files[0];
  return weights ? `${name}@${weights.sha256.slice(0, 16)}` : name;
}
