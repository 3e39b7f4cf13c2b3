/**
 * A Prefiller (./prefiller.ts) whose prompts are prefilled in a thread of their own (./prefill-thread.ts), on a
 * session of the same model.onnx with the engine's options, while the engine's thread goes on decoding.
 *
 * A prefill is pure, so the thread dying loses nothing: the prefills it had in flight, and every later one, are
 * computed by the fallback (the engine's InlinePrefiller) instead, and a warning says so once. An error the thread
 * answers (a prompt its session rejects) fails that call only, as inline.
 *
 * close() asks the thread to exit after its prefill in progress (threads are never terminated mid-run: see
 * ./engine-thread-client.ts) and resolves on its exit.
 */
import { Worker } from "node:worker_threads";
import { fromThreadError } from "./engine-thread-protocol";
import type { Prefill } from "./prefill-cache";
import { fromWire, type FromPrefillThread, type PrefillThreadData, type ToPrefillThread } from "./prefill-thread-protocol";
import type { Prefiller } from "./prefiller";

const ENTRY = new URL("./engine-thread-entry.mjs", import.meta.url);

interface PendingPrefill {
  prompts: number[][];
  resolve: (prefills: Prefill[]) => void;
  reject: (error: Error) => void;
}

export class ThreadPrefiller implements Prefiller {
  readonly where = "thread";
  readonly concurrent = true;
  private readonly pending = new Map<number, PendingPrefill>();
  private nextId = 1;
  private dead = false; // the thread exited: the fallback prefills from now on
  private closing = false;
  private readonly exit: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly fallback: Prefiller,
    private readonly name: string,
  ) {
    worker.on("message", (message: FromPrefillThread) => this.receive(message));
    worker.on("error", () => undefined); // an uncaught error ends the thread: its exit is handled below
    this.exit = new Promise((resolve) => worker.once("exit", (code) => resolve(this.exited(code))));
    worker.unref(); // an idle thread must not keep the process alive; prefills in flight ref it
  }

  /** Starts the thread and resolves once its session is open; rejects with its load error otherwise. */
  static start(folder: string, options: { intraOpThreads?: number; fallback: Prefiller; name: string }): Promise<ThreadPrefiller> {
    const data: PrefillThreadData = { entryModule: "./prefill-thread.ts", folder, intraOpThreads: options.intraOpThreads };
    const worker = new Worker(ENTRY, { workerData: data, execArgv: [] });
    return new Promise((resolve, reject) => {
      const stopListening = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      const fail = (error: Error) => {
        stopListening();
        reject(error);
      };
      const onMessage = (message: FromPrefillThread) => {
        if (message.type === "load_failed") fail(fromThreadError(message.error));
        if (message.type !== "ready") return;
        stopListening();
        resolve(new ThreadPrefiller(worker, options.fallback, options.name));
      };
      const onError = (error: Error) => fail(new Error(`${options.name} failed to start: ${error.message}`, { cause: error }));
      const onExit = (code: number) => fail(new Error(`${options.name} exited (code ${code}) before it was ready`));
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  /** Whether the thread is running (false once it has exited: the fallback prefills then). */
  get alive(): boolean {
    return !this.dead;
  }

  prefill(prompts: number[][]): Promise<Prefill[]> {
    if (this.dead) return this.fallback.prefill(prompts);
    const id = this.nextId++;
    return new Promise<Prefill[]>((resolve, reject) => {
      this.pending.set(id, { prompts, resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.send({ type: "prefill", id, prompts });
    });
  }

  async close(): Promise<void> {
    if (!this.closing && !this.dead) {
      this.closing = true;
      this.worker.ref(); // until it has exited: a process ending under a thread mid-run aborts
      this.send({ type: "close" });
    }
    await this.exit;
  }

  private send(message: ToPrefillThread): void {
    this.worker.postMessage(message);
  }

  private receive(message: FromPrefillThread): void {
    if (message.type === "ready" || message.type === "load_failed") return;
    const call = this.pending.get(message.id);
    if (!call) return;
    this.settle(message.id);
    if (message.type === "prefilled") call.resolve(message.prefills.map(fromWire));
    else call.reject(fromThreadError(message.error));
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }

  /** The thread is gone: what it had in flight is prefilled by the fallback. */
  private exited(code: number): void {
    this.dead = true;
    if (!this.closing) console.warn(`${this.name} exited (code ${code}); prompts are prefilled on the engine's thread from now on`);
    for (const [id, call] of this.pending) {
      this.settle(id);
      this.fallback.prefill(call.prompts).then(call.resolve, call.reject);
    }
  }
}
