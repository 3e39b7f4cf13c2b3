/**
 * The remote engine: sends a GenerationRequest to a gpu-worker `serve` process (gpu-worker/src/softgrpo/serve.py)
 * over HTTP and returns its GenerationResult; the JSON on the wire is exactly the types of ./types.
 * Runtime-neutral (fetch only), so the Workers entry can use it. The serve process answers a whole request at once,
 * so streaming clients receive each sample's text as one delta when the response arrives (the answer delta with all
 * its logprobs). Stop strings and logprobs are computed by the serve process (the same rules as ./sample-decoder).
 *
 *   POST {url}/v1/generate   {model, request: GenerationRequest}  -> 200 GenerationResult
 *                                                                  -> 400 {error: {message, param}}
 */
import {
  EngineInputError,
  type GenerationHooks,
  type GenerationRequest,
  type GenerationResult,
  type ModelDescription,
  type ReasoningEngine,
} from "./types";

export interface RemoteEngineOptions {
  modelId: string; // the model name the serve process knows
  url: string; // base URL of the serve process
  contextLength: number;
  token?: string; // sent as a bearer token when set
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export class RemoteEngine implements ReasoningEngine {
  constructor(private readonly options: RemoteEngineOptions) {}

  describe(): ModelDescription {
    return { id: this.options.modelId, context_length: this.options.contextLength, engine: "remote" };
  }

  async generate(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const doFetch = this.options.fetch ?? fetch;
    // a timeout and the caller's signal, combined by hand (AbortSignal.any is missing on older runtimes)
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("remote engine timed out")), this.options.timeoutMs ?? 600_000);
    const onCallerAbort = () => abort.abort(hooks.signal?.reason);
    hooks.signal?.addEventListener("abort", onCallerAbort, { once: true });
    try {
      return await this.call(doFetch, request, abort.signal, hooks);
    } finally {
      clearTimeout(timer);
      hooks.signal?.removeEventListener("abort", onCallerAbort);
    }
  }

  private async call(doFetch: typeof fetch, request: GenerationRequest, signal: AbortSignal, hooks: GenerationHooks): Promise<GenerationResult> {
    const response = await doFetch(new URL("/v1/generate", this.options.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      },
      body: JSON.stringify({ model: this.options.modelId, request }),
      signal,
    });
    const body = (await response.json().catch(() => null)) as any;
    if (response.status === 400 && body?.error) throw new EngineInputError(body.error.param ?? "request", body.error.message);
    if (!response.ok || !body || !Array.isArray(body.samples)) {
      throw new Error(`remote engine ${this.options.url} answered ${response.status}: ${JSON.stringify(body?.error ?? body)}`);
    }
    const result = body as GenerationResult;
    if (hooks.onEvent) {
      for (const sample of result.samples) {
        if (sample.reasoning) hooks.onEvent({ type: "delta", sample: sample.sample, phase: "reasoning", text: sample.reasoning });
        const logprobs = sample.logprobs?.length ? { logprobs: sample.logprobs } : {};
        if (sample.answer || sample.logprobs?.length) {
          hooks.onEvent({ type: "delta", sample: sample.sample, phase: "answer", text: sample.answer, ...logprobs });
        }
        hooks.onEvent({ type: "sample_done", sample });
      }
    }
    return result;
  }
}
