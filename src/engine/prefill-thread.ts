/**
 * The body of a prefill thread (a `worker_threads` Worker started by spawnPrefillThread in
 * ./prefill-thread-client.ts, through ./engine-thread-entry.mjs): opens its own session of the model folder with the
 * engine's session options, posts "ready" on the port of its workerData, then answers each "prefill" with
 * prefillTogether on that session (./batch-prefill.ts), one at a time, in the order asked.
 *
 * The thread ends itself, never mid-run: on "close", or when the other end of its port goes away (the engine
 * thread exited, even by crashing), it finishes the prefill in progress, releases the session and exits. Worker
 * threads are never terminated inside an onnxruntime run (that aborts the process: see ./engine-thread-client.ts),
 * which is also why the thread is started by the API thread, beside the engine thread, rather than by it: a thread
 * that dies ends its own worker threads at once.
 */
import { workerData } from "node:worker_threads";
import { prefillTogether } from "./batch-prefill";
import { toThreadError } from "./engine-thread-protocol";
import { readModelGeometry } from "./model-folder";
import { OnnxForward } from "./onnx-forward";
import { toWire, type FromPrefillThread, type PrefillThreadData, type ToPrefillThread } from "./prefill-thread-protocol";

const data = workerData as PrefillThreadData;
const port = data.port;
const post = (message: FromPrefillThread) => port.postMessage(message);

function serve(model: OnnxForward): void {
  let queue: Promise<void> = Promise.resolve(); // prefills run one after the other
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    queue = queue.then(async () => {
      await model.release();
      process.exit(0);
    });
  };
  port.on("message", (message: ToPrefillThread) => {
    if (message.type === "prefill") {
      queue = queue.then(async () => {
        try {
          const prefills = await prefillTogether(model, message.prompts);
          post({ type: "prefilled", id: message.id, prefills: prefills.map(toWire) });
        } catch (error) {
          post({ type: "failed", id: message.id, error: toThreadError(error) });
        }
      });
    } else if (message.type === "close") close();
    else throw new Error(`prefill thread: unknown message ${JSON.stringify(message)}`);
  });
  port.on("close", close); // the engine's end went away
  post({ type: "ready" });
}

try {
  const geometry = await readModelGeometry(data.folder);
  serve(await OnnxForward.open(data.folder, geometry, data.intraOpThreads));
} catch (error) {
  post({ type: "load_failed", error: toThreadError(error) });
  process.exit(1);
}
