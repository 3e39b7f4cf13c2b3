/**
 * The prefiller of an engine loaded with `prefillThread` (or handed a prefill thread's port by ThreadedEngine): a
 * ThreadPrefiller (./prefill-thread-client.ts) once its session is seen to prefill bit for bit as the engine's own
 * (prefillsAgree); otherwise, or when the thread cannot start, the engine's InlinePrefiller, with a warning saying
 * why.
 */
import type { MessagePort } from "node:worker_threads";
import { spawnPrefillThread, ThreadPrefiller } from "./prefill-thread-client";
import { prefillsAgree, type InlinePrefiller, type Prefiller } from "./prefiller";

export async function startPrefillThread(
  folder: string,
  options: { modelId: string; intraOpThreads?: number; prefillPort?: MessagePort },
  inline: InlinePrefiller,
  vocabSize: number,
): Promise<Prefiller> {
  const name = `prefill thread of ${options.modelId}`;
  const port = options.prefillPort ?? spawnPrefillThread(folder, options.intraOpThreads).port;
  let thread: ThreadPrefiller;
  try {
    thread = await ThreadPrefiller.connect(port, { fallback: inline, name });
  } catch (error) {
    console.warn(`${name} did not start (${(error as Error).message}); prompts are prefilled between decode steps`);
    return inline;
  }
  if (await prefillsAgree(inline, thread, vocabSize)) return thread;
  await thread.close();
  console.warn(`${name}: its session's prefills differ from the engine's; prompts are prefilled between decode steps`);
  return inline;
}
