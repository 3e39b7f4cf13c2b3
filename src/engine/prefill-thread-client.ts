/**
 * A Prefiller (./prefiller.ts) whose prompts are prefilled in a thread of their own (./prefill-thread.ts), on a
 * session of the same model.onnx with the engine's options, while the engine's thread goes on decoding.
 *
 * spawnPrefillThread starts the thread and gives back the engine's end of its channel (a MessagePort);
 * ThreadPrefiller.connect speaks over that port, from whichever thread the engine runs in. ThreadedEngine spawns
 * the prefill thread of each engine thread itself, on the API thread, and hands the port to the engine thread: a
 * prefill thread started *by* an engine thread would be ended by Node the moment that engine thread died, inside an
 * onnxruntime run as often as not, which aborts the whole process. Beside it, the prefill thread sees its port close
 * and ends itself after its prefill in progress.
 *
 * A prefill is pure, so the thread dying loses nothing: the prefills it had in flight, and every later one, are
 * computed by the fallback (the engine's InlinePrefiller) instead, and a warning says so once. An error the thread
 * answers (a prompt its session rejects) fails that call only, as inline. close() asks the thread to exit after its
 * prefill in progress and resolves once it has (its end of the port closed).
 */
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { fromThreadError } from "./engine-thread-protocol";
import type { Prefill } from "./prefill-cache";
import { fromWire, type FromPrefillThread, type PrefillThreadData, type ToPrefillThread } from "./prefill-thread-protocol";
import type { Prefiller } from "./prefiller";

const ENTRY = new URL("./engine-thread-entry.mjs", import.meta.url);

/** Starts a prefill thread for the model folder; `port` is the engine's end of its channel. */
export function spawnPrefillThread(folder: string, intraOpThreads?: number): { worker: Worker; port: MessagePort } {
  const { port1, port2 } = new MessageChannel();
  const data: PrefillThreadData = { entryModule: "./prefill-thread.ts", folder, intraOpThreads, port: port1 };
  const worker = new Worker(ENTRY, { workerData: data, transferList: [port1], execArgv: [] });
  worker.on("error", () => undefined); // its port closes when it dies: the engine's side handles that
  worker.unref();
  return { worker, port: port2 };
}

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
  private dead = false; // the thread is gone: the fallback prefills from now on
  private closing = false;
  private readonly closed: Promise<void>;

  private constructor(
    private readonly port: MessagePort,
    private readonly fallback: Prefiller,
    private readonly name: string,
  ) {
    port.on("message", (message: FromPrefillThread) => this.receive(message));
    this.closed = new Promise((resolve) => port.once("close", () => resolve(this.gone())));
    port.unref(); // an idle prefiller must not keep the process alive; prefills in flight ref it
  }

  /** Speaks to the prefill thread at the other end of `port`; resolves once its session is open. */
  static connect(port: MessagePort, options: { fallback: Prefiller; name: string }): Promise<ThreadPrefiller> {
    return new Promise((resolve, reject) => {
      const stopListening = () => {
        port.off("message", onMessage);
        port.off("close", onClose);
      };
      const onMessage = (message: FromPrefillThread) => {
        if (message.type === "load_failed") {
          stopListening();
          reject(fromThreadError(message.error));
        } else if (message.type === "ready") {
          stopListening();
          resolve(new ThreadPrefiller(port, options.fallback, options.name));
        }
      };
      const onClose = () => {
        stopListening();
        reject(new Error(`${options.name} exited before it was ready`));
      };
      port.on("message", onMessage);
      port.on("close", onClose);
    });
  }

  /** Whether the thread is running (false once it has gone: the fallback prefills then). */
  get alive(): boolean {
    return !this.dead;
  }

  prefill(prompts: number[][]): Promise<Prefill[]> {
    if (this.dead) return this.fallback.prefill(prompts);
    const id = this.nextId++;
    return new Promise<Prefill[]>((resolve, reject) => {
      this.pending.set(id, { prompts, resolve, reject });
      if (this.pending.size === 1) this.port.ref();
      this.send({ type: "prefill", id, prompts });
    });
  }

  async close(): Promise<void> {
    if (!this.closing && !this.dead) {
      this.closing = true;
      this.port.ref(); // until it has gone: a process ending under a thread mid-run aborts
      this.send({ type: "close" });
    }
    await this.closed;
  }

  private send(message: ToPrefillThread): void {
    this.port.postMessage(message);
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
    if (this.pending.size === 0 && !this.closing) this.port.unref();
  }

  /** The thread is gone: what it had in flight is prefilled by the fallback. */
  private gone(): void {
    this.dead = true;
    this.port.unref();
    if (!this.closing) console.warn(`${this.name} exited; prompts are prefilled on the engine's thread from now on`);
    for (const [id, call] of this.pending) {
      this.settle(id);
      this.fallback.prefill(call.prompts).then(call.resolve, call.reject);
    }
  }
}
