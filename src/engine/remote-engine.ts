/**
 * The remote engine: sends a GenerationRequest to a gpu-worker `serve` process (gpu-worker/src/softgrpo/serve.py)
 * over HTTP and streams its answer back. Runtime-neutral (fetch only), so the Workers entry can use it.
 *
 *   POST {url}/v1/generate  {model, request: GenerationRequest, stream: true, files?: {key, files: [{name, bytes,
 *                            sha256, url}]}}
 *     -> 200 application/x-ndjson, one JSON object a line, as the replica decodes:
 *          {"type": "delta", "sample", "phase", "text", "logprobs"?}   (GenerationEvent)
 *          {"type": "sample_done", "sample": GeneratedSample}          (GenerationEvent)
 *          {"type": "result", "result": GenerationResult}               last line of a success
 *          {"type": "error", "error": {"message", "param"?}}           last line of a failure after the headers
 *     -> 400 {error: {message, param}}   bad request content (EngineInputError naming the field)
 *
 * `files` lets the replica load a model it does not hold (signed GET URLs of the model folder, `key` its cache key,
 * src/replicas/). Aborting the caller's signal aborts the fetch; the replica sees its connection close and stops
 * decoding. Stop strings and logprobs are computed by the serve process (the same rules as ./sample-decoder).
 */
import {
  EngineInputError,
  type GenerationEvent,
  type GenerationHooks,
  type GenerationRequest,
  type GenerationResult,
  type ModelDescription,
  type ReasoningEngine,
} from "./types";

export interface RemoteModelFiles {
  key: string;
  files: { name: string; bytes: number; sha256: string; url: string }[];
}

export interface RemoteEngineOptions {
  modelId: string; // the model name the serve process knows (or is given `files` for)
  url: string; // base URL of the serve process
  contextLength: number;
  token?: string; // sent as a bearer token when set
  files?: RemoteModelFiles; // where the replica loads the model from when it does not hold it
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** The serve process could not be reached (connection refused or reset before an answer): nothing ran. */
export class RemoteEngineUnreachableError extends Error {}

type WireLine = GenerationEvent | { type: "result"; result: GenerationResult } | { type: "error"; error: { message: string; param?: string | null } };

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
    if (hooks.signal?.aborted) onCallerAbort();
    hooks.signal?.addEventListener("abort", onCallerAbort, { once: true });
    try {
      return await this.call(doFetch, request, abort.signal, hooks);
    } finally {
      clearTimeout(timer);
      hooks.signal?.removeEventListener("abort", onCallerAbort);
    }
  }

  private async call(doFetch: typeof fetch, request: GenerationRequest, signal: AbortSignal, hooks: GenerationHooks): Promise<GenerationResult> {
    let response: Response;
    try {
      response = await doFetch(new URL("/v1/generate", this.options.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
        body: JSON.stringify({ model: this.options.modelId, request, stream: true, ...(this.options.files ? { files: this.options.files } : {}) }),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new RemoteEngineUnreachableError(`remote engine ${this.options.url} unreachable: ${(err as Error).message}`);
    }
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => null)) as any;
      if (response.status === 400 && body?.error) throw new EngineInputError(body.error.param ?? "request", body.error.message);
      throw new Error(`remote engine ${this.options.url} answered ${response.status}: ${JSON.stringify(body?.error ?? body)}`);
    }
    if (!response.headers.get("content-type")?.includes("ndjson")) {
      // a serve process that answers the whole result at once (no streaming)
      const result = (await response.json()) as GenerationResult;
      for (const sample of result.samples) {
        if (sample.reasoning) hooks.onEvent?.({ type: "delta", sample: sample.sample, phase: "reasoning", text: sample.reasoning });
        if (sample.answer || sample.logprobs?.length)
          hooks.onEvent?.({ type: "delta", sample: sample.sample, phase: "answer", text: sample.answer, ...(sample.logprobs?.length ? { logprobs: sample.logprobs } : {}) });
        hooks.onEvent?.({ type: "sample_done", sample });
      }
      return result;
    }
    for await (const line of ndjsonLines(response.body)) {
      if (line.type === "result") return line.result;
      if (line.type === "error") {
        if (line.error.param) throw new EngineInputError(line.error.param, line.error.message);
        throw new Error(`remote engine ${this.options.url} failed: ${line.error.message}`);
      }
      hooks.onEvent?.(line);
    }
    throw new Error(`remote engine ${this.options.url} ended its stream without a result`);
  }
}

/** The JSON objects of a newline-delimited JSON stream, as they arrive. */
async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<WireLine> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffered += decoder.decode(value, { stream: !done });
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line) as WireLine;
      }
      if (done) break;
    }
    if (buffered.trim()) yield JSON.parse(buffered) as WireLine;
  } finally {
    reader.releaseLock();
  }
}
