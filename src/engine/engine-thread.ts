/**
 * The body of one engine thread (a `worker_threads` Worker started by ./engine-thread-client.ts through
 * ./engine-thread-entry.mjs): loads the in-process OnnxEngine for the model folder of its workerData, posts "ready"
 * with the model's description, then serves generate, preflight, cancel and close messages
 * (./engine-thread-protocol.ts).
 *
 * Decoding here is exactly OnnxEngine.generate: the samples, texts and finish reasons are what an in-process call
 * returns for the same request. Streaming events are sent as one message per decode step and request (the events
 * one step emits are collected and posted together, in order), so a batch of 32 samples costs the API thread one
 * message per step rather than 32 or more. The requests in flight in a thread decode together, in its engine's
 * continuous batch (./batch-scheduler.ts): one scheduler per model and thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { toThreadError, type EngineThreadData, type FromEngineThread, type ToEngineThread } from "./engine-thread-protocol";
import { OnnxEngine } from "./onnx-engine";
import type { GenerationEvent, GenerationRequest } from "./types";

const port = parentPort!;
const data = workerData as EngineThreadData;
const post = (message: FromEngineThread) => port.postMessage(message);

/** Events of the current step, posted together once the step's synchronous part is over. */
function stepBatcher(id: number) {
  let queued: GenerationEvent[] = [];
  const flush = () => {
    if (queued.length === 0) return;
    post({ type: "events", id, events: queued });
    queued = [];
  };
  const emit = (event: GenerationEvent) => {
    if (queued.length === 0) queueMicrotask(flush);
    queued.push(event);
  };
  return { emit, flush };
}

async function generate(engine: OnnxEngine, id: number, request: GenerationRequest, stream: boolean, abort: AbortController, tenant?: string) {
  const batcher = stream ? stepBatcher(id) : null;
  try {
    const result = await engine.generate(request, { onEvent: batcher?.emit, signal: abort.signal, tenant });
    batcher?.flush();
    post({ type: "generated", id, result });
  } catch (error) {
    batcher?.flush();
    post({ type: "failed", id, error: toThreadError(error) });
  }
}

async function serve(engine: OnnxEngine): Promise<void> {
  const running = new Map<number, { abort: AbortController; done: Promise<void> }>();
  port.on("message", (message: ToEngineThread) => {
    switch (message.type) {
      case "generate": {
        const abort = new AbortController();
        if (message.aborted) abort.abort();
        const done = generate(engine, message.id, message.request, message.stream, abort, message.tenant).finally(() => running.delete(message.id));
        running.set(message.id, { abort, done });
        return;
      }
      case "preflight":
        engine.preflight(message.request).then(
          () => post({ type: "preflighted", id: message.id }),
          (error) => post({ type: "failed", id: message.id, error: toThreadError(error) }),
        );
        return;
      case "cancel":
        running.get(message.id)?.abort.abort();
        return;
      case "close":
        void close(engine, [...running.values()]);
        return;
      default:
        // a message this thread does not understand means the two sides disagree: die loudly rather than hang
        throw new Error(`engine thread: unknown message ${JSON.stringify(message)}`);
    }
  });
  post({ type: "ready", description: engine.describe() });
}

/**
 * Exits between decode steps, never inside one: Worker.terminate() during an onnxruntime run aborts the whole
 * process (the binding throws a C++ Napi::Error once JavaScript is shut down), so a thread is asked to leave.
 */
async function close(engine: OnnxEngine, running: Array<{ abort: AbortController; done: Promise<void> }>): Promise<void> {
  for (const run of running) run.abort.abort();
  await Promise.all(running.map((run) => run.done));
  await engine.release();
  process.exit(0);
}

try {
  const { folder, modelId, intraOpThreads, batching, maxBatchRows, prefillPort } = data;
  await serve(await OnnxEngine.load(folder, { modelId, intraOpThreads, batching, maxBatchRows, prefillPort }));
} catch (error) {
  // no message listener is left, so the thread ends after this message
  post({ type: "load_failed", error: toThreadError(error) });
}
