/** The engine of a requested model name, with the 4xx answers that name the `model` field. */
import { ApiError, notFound } from '../errors';
import type { ReasoningEngine } from '../engine/types';
import type { Deps } from '../ports';
import { resolveModel } from '../models/resolve';

export async function engineFor(deps: Deps, tenantId: string, modelId: string): Promise<ReasoningEngine> {
  if (!deps.engines) {
    throw new ApiError(503, 'This deployment serves no inference (no engines configured).', { code: 'no_engines', param: 'model' });
  }
  const model = await resolveModel(deps, tenantId, modelId);
  if (!model) throw notFound('model', modelId, 'model');
  const engine = await deps.engines.get({ id: model.id, base: model.base, files: model.files });
  if (!engine) {
    throw new ApiError(400, `model: '${modelId}' cannot be served by this deployment (no engine is configured for it).`, {
      code: 'model_not_servable',
      param: 'model',
    });
  }
  return engine;
}
