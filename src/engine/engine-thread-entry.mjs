/**
 * The script a Worker starts for an engine thread or a prefill thread: registers tsx's TypeScript loader in this
 * thread, then runs ./engine-thread.ts (or the module its workerData names: ./prefill-thread.ts). Plain JavaScript
 * because it runs before any loader exists in the thread.
 *
 * Why not `new Worker('engine-thread.ts', { execArgv: ['--import', 'tsx'] })`: on Node 20 the loader hooks that
 * `--import tsx` registers do not reach a worker's own module loading (tsx 4.23 there: "Unknown file extension
 * .ts"), under `node --import tsx`, the `tsx` CLI and vitest alike; tsx's documented register() API called inside
 * the thread works under all three, and on Node 22 too (registering twice is harmless).
 */
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

const MODULES = ["./engine-thread.ts", "./prefill-thread.ts"];

register();
const module = workerData?.entryModule ?? MODULES[0];
if (!MODULES.includes(module)) throw new Error(`engine thread entry: unknown module ${module}`);
await import(module);
