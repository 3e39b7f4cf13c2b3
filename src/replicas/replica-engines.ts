/**
 * The engine registry in front of serving replicas: a request for a model goes to a live replica (./routing.ts),
 * with signed GET URLs for the model's serving files, so a replica loads any model the API names (base models and
 * fine-tuned checkpoints alike) without a restart. When no replica is live, the static engine configuration (Node's
 * ENGINE_MODELS, Workers' REMOTE_ENGINES) answers as before, as a fallback. Runtime-neutral: Node and Workers use
 * it the same way.
 */
import { RemoteEngine, RemoteEngineUnreachableError, type RemoteModelFiles } from '../engine/remote-engine';
import type { ModelRef } from '../engine/registry';
import type { EngineRegistry, GenerationHooks, GenerationRequest, GenerationResult, ModelDescription, ReasoningEngine } from '../engine/types';
import type { ServeReplicaRow } from '../db/schema';
import { EngineInputError } from '../engine/types';
import { ApiError } from '../errors';
import type { Deps } from '../ports';
import { pickReplica } from './routing';
import { liveReplicas } from './store';

/** The files of a model folder a replica needs to serve it (the ONNX export and training state stay behind). */
export const SERVING_FILES = new Set([
  'config.json',
  'manifest.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
]);

/** Replicas one request tries before it answers 503 (each failed one may have cost a connect timeout). */
const MAX_REPLICA_ATTEMPTS = 3;

/** Context length when neither the model nor its base manifest states one; the replica checks the real one. */
const UNSTATED_CONTEXT_LENGTH = 32768;

export class ReplicaEngineRegistry implements EngineRegistry {
  /** Requests this isolate sent per replica and not yet finished (added to the heartbeat's load). */
  private readonly inFlight = new Map<string, number>();

  /** `deps` is read on use (the registry is itself part of deps). */
  constructor(
    private readonly deps: () => Deps,
    private readonly fallback?: EngineRegistry,
  ) {}

  async get(ref: ModelRef | string): Promise<ReasoningEngine | null> {
    const model: ModelRef = typeof ref === 'string' ? { id: ref, base: ref } : ref;
    if (model.files?.length && model.key) {
      const replicas = await liveReplicas(this.deps());
      if (replicas.length) return new ReplicaEngine(this.deps(), model as ReplicaModel, replicas, this.inFlight);
    }
    return this.fallback ? this.fallback.get(ref) : null;
  }
}

type ReplicaModel = ModelRef & Required<Pick<ModelRef, 'files' | 'key'>>;

class ReplicaEngine implements ReasoningEngine {
  constructor(
    private readonly deps: Deps,
    private readonly model: ReplicaModel,
    private readonly replicas: ServeReplicaRow[],
    private readonly inFlight: Map<string, number>,
  ) {}

  describe(): ModelDescription {
    return { id: this.model.id, context_length: this.model.contextLength ?? UNSTATED_CONTEXT_LENGTH, engine: 'remote' };
  }

  async generate(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    // A replica that died since its last heartbeat (connection refused), or that fails before sending anything
    // (e.g. it cannot fetch the model), is skipped for the next one; once output has streamed, a failure is final.
    const candidates = [...this.replicas];
    let emitted = false;
    const counted: GenerationHooks = { ...hooks, onEvent: (event) => ((emitted = true), hooks.onEvent?.(event)) };
    const failures: string[] = [];
    for (;;) {
      const replica = failures.length < MAX_REPLICA_ATTEMPTS ? pickReplica(candidates, this.model.key, (id) => this.inFlight.get(id) ?? 0) : null;
      if (!replica) {
        throw new ApiError(503, `No serving replica could answer for '${this.model.id}' now (${failures.join('; ')}); try again.`, {
          code: 'replicas_unavailable',
        });
      }
      this.inFlight.set(replica.id, (this.inFlight.get(replica.id) ?? 0) + 1);
      try {
        const engine = new RemoteEngine({
          modelId: this.model.id,
          url: replica.url,
          contextLength: this.describe().context_length,
          token: replica.token,
          files: await this.signedFiles(replica.apiOrigin),
        });
        return await engine.generate(request, counted);
      } catch (err) {
        if (err instanceof EngineInputError || emitted || hooks.signal?.aborted) throw err;
        console.error(`replica ${replica.id} (${replica.url}) failed:`, (err as Error).message);
        failures.push(err instanceof RemoteEngineUnreachableError ? 'unreachable' : 'failed');
        candidates.splice(candidates.indexOf(replica), 1);
      } finally {
        this.inFlight.set(replica.id, (this.inFlight.get(replica.id) ?? 1) - 1);
      }
    }
  }

  private async signedFiles(origin: string): Promise<RemoteModelFiles> {
    const { deps, model } = this;
    const expiresAt = deps.clock.now() + deps.config.signedUrlSeconds * 1000;
    const files = await Promise.all(
      model.files
        .filter((f) => SERVING_FILES.has(f.name))
        .map(async (f) => ({
          name: f.name,
          bytes: f.bytes,
          sha256: f.sha256,
          url: await deps.blobUrls.sign({ key: f.key, method: 'GET', expiresAt, origin }),
        })),
    );
    return { key: model.key, files };
  }
}
