/**
 * The messages between the API thread (./engine-thread-client.ts) and an engine thread (./engine-thread.ts), and the
 * error shape that crosses between them. Messages are structured clones, which keep plain data but not an Error's
 * class or own fields: an EngineInputError is sent as {name, message, param} and rebuilt on the other side, so a
 * route answers the same 4xx naming the same `param` whether the engine runs in a thread or in-process.
 */
import type { MessagePort } from "node:worker_threads";
import {
  EngineInputError,
  type GenerationEvent,
  type GenerationRequest,
  type GenerationResult,
  type ModelDescription,
} from "./types";

/** workerData of an engine thread: which model folder to load, and how, as OnnxEngine.load takes it. */
export interface EngineThreadData {
  folder: string;
  modelId: string;
  intraOpThreads?: number;
  batching?: boolean;
  maxBatchRows?: number;
  prefillPort?: MessagePort; // the engine's end of its prefill thread's channel (ThreadedEngine started that thread)
}

export type ToEngineThread =
  | { type: "generate"; id: number; request: GenerationRequest; stream: boolean; aborted: boolean; tenant?: string }
  | { type: "preflight"; id: number; request: GenerationRequest }
  | { type: "cancel"; id: number } // the caller's signal aborted: unfinished samples end "cancelled"
  | { type: "close" }; // cancel everything, release the session and exit (see EngineThread.close)

export type FromEngineThread =
  | { type: "ready"; description: ModelDescription }
  | { type: "load_failed"; error: ThreadError }
  | { type: "events"; id: number; events: GenerationEvent[] } // one decode step's events, in emission order
  | { type: "generated"; id: number; result: GenerationResult }
  | { type: "preflighted"; id: number }
  | { type: "failed"; id: number; error: ThreadError };

export interface ThreadError {
  name: string;
  message: string;
  stack?: string;
  param?: string; // set for an EngineInputError
}

export function toThreadError(error: unknown): ThreadError {
  if (error instanceof EngineInputError) return { name: error.name, message: error.message, stack: error.stack, param: error.param };
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: "Error", message: String(error) };
}

export function fromThreadError(error: ThreadError): Error {
  const rebuilt = error.param !== undefined ? new EngineInputError(error.param, error.message) : new Error(error.message);
  if (error.param === undefined) rebuilt.name = error.name;
  // keep the thread's stack, where the error was thrown, after this side's
  if (error.stack) rebuilt.stack = `${rebuilt.stack}\n    --- in the engine thread ---\n${error.stack}`;
  return rebuilt;
}
