/**
 * One engine thread seen from the API thread: starts the Worker (./engine-thread-entry.mjs), waits for its "ready",
 * and turns generate / preflight calls into messages, resolving each call when its answer arrives
 * (./engine-thread-protocol.ts). The caller's hooks cross too: streaming events are passed to hooks.onEvent in the
 * order the thread emitted them, an abort of hooks.signal is forwarded as a "cancel", after which the thread's
 * OnnxEngine ends the unfinished samples with finish_reason "cancelled", as in-process, and hooks.tenant goes with
 * the request (the thread's batch shares its rows across tenants).
 *
 * When the thread dies (an uncaught error in it, running out of memory, process.exit in it), every call still in
 * flight rejects with an error naming the model and the exit; `alive` turns false and `onExit` tells the pool
 * (./threaded-engine.ts), which starts a fresh thread on its next use.
 *
 * Threads are never stopped with Worker.terminate(): terminating a thread while it is inside an onnxruntime run
 * aborts the whole process ("terminate called after throwing an instance of 'Napi::Error'", onnxruntime-node 1.30
 * on Node 20). close() asks the thread to cancel its work and exit between decode steps instead.
 */
import { Worker } from "node:worker_threads";
import {
  fromThreadError,
  type EngineThreadData,
  type FromEngineThread,
  type ToEngineThread,
} from "./engine-thread-protocol";
import type { GenerationEvent, GenerationHooks, GenerationRequest, GenerationResult, ModelDescription } from "./types";

const ENTRY = new URL("./engine-thread-entry.mjs", import.meta.url);

interface PendingCall {
  resolve: (value: any) => void;
  reject: (error: Error) => void;
  onEvent?: (event: GenerationEvent) => void;
}

export class EngineThread {
  private readonly pending = new Map<number, PendingCall>();
  private nextId = 1;
  private stopped: Error | null = null; // why no more calls are taken: the thread exited, or close() was called
  private readonly exit: Promise<number>;
  /** Called once when the thread has exited, for whatever reason. */
  onExit: () => void = () => undefined;

  private constructor(
    readonly worker: Worker,
    readonly description: ModelDescription,
  ) {
    let crash: Error | null = null;
    worker.on("message", (message: FromEngineThread) => this.receive(message));
    worker.on("error", (error) => (crash ??= error));
    this.exit = new Promise((resolve) => worker.once("exit", (code) => resolve(this.exited(code, crash))));
    worker.unref(); // an idle thread must not keep the process alive; calls in flight ref it (see call())
  }

  /** Starts a thread and resolves once its engine is loaded; rejects with the load error otherwise. */
  static start(data: EngineThreadData): Promise<EngineThread> {
    // No inherited execArgv: Node 20 runs the parent's --import preloads in a worker but without the loader hooks
    // they register, so `node --import tsx --import ./some.ts` would fail every thread ("Unknown file extension
    // .ts"). The thread needs nothing from the command line: its entry registers tsx itself.
    const worker = new Worker(ENTRY, { workerData: data, execArgv: [], transferList: data.prefillPort ? [data.prefillPort] : [] });
    return new Promise((resolve, reject) => {
      // removed one by one: worker.removeAllListeners() would also drop Node's own listeners that start its port
      const stopListening = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      const fail = (error: Error) => {
        stopListening();
        reject(error); // a thread that failed to load has nothing left to run and exits by itself
      };
      const onMessage = (message: FromEngineThread) => {
        if (message.type === "load_failed") fail(fromThreadError(message.error));
        if (message.type !== "ready") return;
        stopListening();
        resolve(new EngineThread(worker, message.description));
      };
      const name = `engine thread of ${data.modelId}`;
      const onError = (error: Error) => fail(new Error(`${name} failed to start: ${error.message}`, { cause: error }));
      const onExit = (code: number) => fail(new Error(`${name} exited (code ${code}) before it was ready`));
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  get alive(): boolean {
    return this.stopped === null;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  generate(request: GenerationRequest, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const { signal, onEvent, tenant } = hooks;
    return this.call<GenerationResult>(
      (id) => ({ type: "generate", id, request, stream: onEvent !== undefined, aborted: signal?.aborted ?? false, tenant }),
      onEvent,
      signal,
    );
  }

  preflight(request: GenerationRequest): Promise<void> {
    return this.call<void>((id) => ({ type: "preflight", id, request }));
  }

  /** Calls in flight reject at once; the thread cancels them, releases its session and exits. Resolves on exit. */
  async close(): Promise<void> {
    if (this.stopped === null) {
      this.stopped = new Error(`engine thread of ${this.description.id} was released`);
      this.rejectAll(() => this.stopped!);
      this.worker.ref(); // until it has exited: a process ending under a thread mid-run aborts like terminate()
      this.send({ type: "close" });
    }
    await this.exit;
  }

  private call<T>(message: (id: number) => ToEngineThread, onEvent?: PendingCall["onEvent"], signal?: AbortSignal): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    const cancel = () => this.send({ type: "cancel", id });
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      if (this.pending.size === 1) this.worker.ref();
      this.send(message(id));
      signal?.addEventListener("abort", cancel, { once: true });
    });
    return result.finally(() => signal?.removeEventListener("abort", cancel));
  }

  private send(message: ToEngineThread): void {
    this.worker.postMessage(message);
  }

  private receive(message: FromEngineThread): void {
    if (message.type === "ready" || message.type === "load_failed") return;
    const call = this.pending.get(message.id);
    if (!call) return; // answered already (rejected by close(), or by a throwing onEvent)
    if (message.type === "events") {
      try {
        for (const event of message.events) call.onEvent?.(event);
      } catch (error) {
        // in-process, a throwing onEvent ends generate() with its error; here it also stops the thread's decoding
        this.send({ type: "cancel", id: message.id });
        this.settle(message.id);
        call.reject(error as Error);
      }
      return;
    }
    this.settle(message.id);
    if (message.type === "generated") call.resolve(message.result);
    else if (message.type === "preflighted") call.resolve(undefined);
    else call.reject(fromThreadError(message.error));
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }

  private rejectAll(error: () => Error): void {
    for (const [id, call] of this.pending) {
      this.settle(id);
      call.reject(error());
    }
  }

  private exited(code: number, crash: Error | null): number {
    const reason = crash ? `: ${crash.message}` : "";
    const inFlight = `engine thread of ${this.description.id} exited (code ${code}${reason}) with this request in flight`;
    this.rejectAll(() => new Error(inFlight, { cause: crash }));
    this.stopped ??= new Error(`engine thread of ${this.description.id} exited (code ${code}${reason})`);
    this.onExit();
    return code;
  }
}
