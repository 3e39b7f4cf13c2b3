/**
 * The engine of a requested model name, with the 4xx/503 answers that name the `model` field. The model is resolved
 * first, so an unknown name is 404 whatever engines this deployment has; a known model with no engine available
 * now (no live serving replica, nothing configured for it) is 503 `no_engines`.
 */
import { ApiError, notFound } from '../errors';
import type { ReasoningEngine } from '../engine/types';
import type { Deps } from '../ports';
import { resolveModel } from '../models/resolve';
import { modelKey } from '../replicas/model-key';
import { findBaseModel } from '../models/tenant-models';

export async function engineFor(deps: Deps, tenantId: string, modelId: string): Promise<ReasoningEngine> {
  const model = await resolveModel(deps, tenantId, modelId);
  if (!model) throw notFound('model', modelId, 'model');
  const base = await findBaseModel(deps, tenantId, model.base);
  const stated = Number(base?.manifest.context_length);
  const engine = await deps.engines?.get({
    id: model.id,
    base: model.base,
    files: model.files,
    key: modelKey(model),
    ...(Number.isInteger(stated) && stated > 0 ? { contextLength: stated } : {}),
  });
  if (!engine) {
    throw new ApiError(503, `model: no engine can serve '${modelId}' now (no serving replica is registered and none is configured for it).`, {
      code: 'no_engines',
      param: 'model',
    });
  }
  return engine;
}
