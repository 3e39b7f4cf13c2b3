/**
 * The body of a prefill thread (a `worker_threads` Worker started by ./prefill-thread-client.ts through
 * ./engine-thread-entry.mjs): opens its own session of the model folder with the engine's session options, posts
 * "ready", then answers each "prefill" with prefillTogether on that session (./batch-prefill.ts), one at a time, in
 * the order asked. "close" waits for the prefill in progress, releases the session and exits (a thread is never
 * terminated inside an onnxruntime run: see ./engine-thread-client.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import { prefillTogether } from "./batch-prefill";
import { toThreadError } from "./engine-thread-protocol";
import { readModelGeometry } from "./model-folder";
import { OnnxForward } from "./onnx-forward";
import { toWire, type FromPrefillThread, type PrefillThreadData, type ToPrefillThread } from "./prefill-thread-protocol";

const port = parentPort!;
const data = workerData as PrefillThreadData;
const post = (message: FromPrefillThread) => port.postMessage(message);

function serve(model: OnnxForward): void {
  let queue: Promise<void> = Promise.resolve(); // prefills run one after the other
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
    } else if (message.type === "close") {
      queue = queue.then(async () => {
        await model.release();
        process.exit(0);
      });
    } else throw new Error(`prefill thread: unknown message ${JSON.stringify(message)}`);
  });
  post({ type: "ready" });
}

try {
  const geometry = await readModelGeometry(data.folder);
  serve(await OnnxForward.open(data.folder, geometry, data.intraOpThreads));
} catch (error) {
  post({ type: "load_failed", error: toThreadError(error) });
}
