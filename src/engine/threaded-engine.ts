/**
 * The ONNX engine off the event loop: a ReasoningEngine that runs OnnxEngine (./onnx-engine.ts) in a small pool of
 * worker threads per model (./engine-thread-client.ts), so that tokenizing, the onnxruntime forward passes and the
 * per-step sampling in JavaScript never hold up the API thread: a heavy /v1/reason costs other requests (and
 * /healthz) nothing but CPU.
 *
 * Pool: up to `poolSize` threads (default min(2, available cores)), each with its own onnxruntime session, so the
 * model's weights are in memory once per thread. The first thread starts at load (the model's description comes
 * from it); more start only when every running thread is busy, so an idle model holds one thread. A request goes to
 * the thread with the fewest samples in flight; the requests of a thread decode together in its engine's continuous
 * batch (./batch-scheduler.ts), so each thread is one batch, and the pool spreads the rows over the cores. A thread
 * that dies rejects its requests in flight with an error saying so and leaves the pool; the next request starts a
 * fresh one. Each engine thread may prefill its batch's prompts in a thread of its own (OnnxEngine's prefillThread),
 * by default when the pool is smaller than the machine's cores, so prefill and decode overlap on the free core.
 * release() ends every thread (each exits between two decode steps: see ./engine-thread-client.ts on why
 * threads are never terminated).
 */
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { EngineThread } from "./engine-thread-client";
import type { EngineThreadData } from "./engine-thread-protocol";
import { spawnPrefillThread } from "./prefill-thread-client";
import type { GenerationHooks, GenerationRequest, GenerationResult, ModelDescription, ReasoningEngine } from "./types";

export interface ThreadedEngineOptions {
  modelId: string;
  intraOpThreads?: number; // onnxruntime intra-op threads of each thread's session (default 1)
  poolSize?: number; // threads for this model (default min(2, available cores))
  batching?: boolean; // continuous batching in each thread (default true)
  maxBatchRows?: number; // the cap on rows of each thread's batch (OnnxEngine's default)
  /** Each engine thread prefills its batch's prompts in a thread of its own (default: when the pool leaves a core free). */
  prefillThread?: boolean;
}

export const defaultPoolSize = (): number => Math.min(2, availableParallelism());

/** A prefill thread per engine thread by default when the pool's threads leave a core for them. */
export const defaultPrefillThread = (poolSize: number): boolean => poolSize < availableParallelism();

interface Slot {
  thread: Promise<EngineThread>;
  assigned: number; // samples of the requests sent to this slot and not yet answered (counted before it is ready)
  prefill: Worker | null; // the engine thread's prefill thread, started here beside it
}

export class ThreadedEngine implements ReasoningEngine {
  private readonly slots: Slot[] = [];
  private released = false;

  private constructor(
    private readonly folder: string,
    private readonly options: Required<Pick<ThreadedEngineOptions, "modelId" | "poolSize">> & ThreadedEngineOptions,
    private readonly description: ModelDescription,
  ) {}

  /** Starts the first thread (a bad model folder rejects here, with the thread's load error). */
  static async load(folder: string, options: ThreadedEngineOptions): Promise<ThreadedEngine> {
    const poolSize = options.poolSize ?? defaultPoolSize();
    if (!Number.isInteger(poolSize) || poolSize < 1) throw new RangeError(`poolSize must be a positive integer, got ${poolSize}`);
    const full = { ...options, poolSize, prefillThread: options.prefillThread ?? defaultPrefillThread(poolSize) };
    const { data, prefill } = threadData(folder, full);
    const first = await EngineThread.start(data).catch(async (error) => {
      await stopped(prefill); // it ends once the engine thread's end of its port is gone
      throw error;
    });
    const engine = new ThreadedEngine(folder, full, first.description);
    engine.adopt(Promise.resolve(first), prefill);
    return engine;
  }

  describe(): ModelDescription {
    return this.description;
  }

  /** The threads running now, for tests and metrics. */
  async threads(): Promise<EngineThread[]> {
    return Promise.all(this.slots.map((slot) => slot.thread));
  }

  preflight(request: GenerationRequest): Promise<void> {
    return this.onSomeThread(0, (thread) => thread.preflight(request));
  }

  generate(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    return this.onSomeThread(request.samples.length, (thread) => thread.generate(request, hooks));
  }

  async release(): Promise<void> {
    this.released = true;
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((slot) => slot.thread.then((thread) => thread.close()).catch(() => undefined)));
    await Promise.all(slots.map((slot) => stopped(slot.prefill))); // each ends once its engine thread has
  }

  private async onSomeThread<T>(samples: number, work: (thread: EngineThread) => Promise<T>): Promise<T> {
    if (this.released) throw new Error(`engine of ${this.options.modelId} was released`);
    const slot = this.pick();
    slot.assigned += samples;
    try {
      return await work(await slot.thread);
    } finally {
      slot.assigned -= samples;
    }
  }

  /** An idle thread, else a new one while the pool has room, else the least busy. */
  private pick(): Slot {
    const leastBusy = this.slots.reduce<Slot | null>((best, slot) => (best && best.assigned <= slot.assigned ? best : slot), null);
    if (leastBusy && (leastBusy.assigned === 0 || this.slots.length >= this.options.poolSize)) return leastBusy;
    const { data, prefill } = threadData(this.folder, this.options);
    return this.adopt(EngineThread.start(data), prefill);
  }

  /** Puts a (starting) thread in the pool; it leaves the pool when it fails to start or exits. */
  private adopt(thread: Promise<EngineThread>, prefill: Worker | null): Slot {
    const slot: Slot = { thread, assigned: 0, prefill };
    const leave = () => {
      const at = this.slots.indexOf(slot);
      if (at >= 0) this.slots.splice(at, 1);
    };
    thread.then((started) => (started.onExit = leave), leave);
    this.slots.push(slot);
    return slot;
  }
}

/** An engine thread's workerData, and its prefill thread when it has one (started here, beside it). */
function threadData(folder: string, options: ThreadedEngineOptions): { data: EngineThreadData; prefill: Worker | null } {
  const { modelId, intraOpThreads, batching, maxBatchRows, prefillThread } = options;
  const data: EngineThreadData = { folder, modelId, intraOpThreads, batching, maxBatchRows };
  if (!prefillThread || batching === false) return { data, prefill: null };
  const { worker, port } = spawnPrefillThread(folder, intraOpThreads);
  return { data: { ...data, prefillPort: port }, prefill: worker };
}

/** Resolves once the worker has exited (at once for none, or one that has already). */
function stopped(worker: Worker | null): Promise<void> {
  if (!worker || worker.threadId === -1) return Promise.resolve();
  worker.ref(); // until it has exited: a process ending under a thread mid-run aborts
  return new Promise((resolve) => worker.once("exit", () => resolve()));
}
