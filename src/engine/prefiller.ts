/**
 * Where a batch's prompts are prefilled. The continuous batch (./batch-scheduler.ts) asks a Prefiller for the
 * prefills of the prompts it is about to start and goes on decoding while they are computed:
 *
 * - InlinePrefiller runs them on the engine's own session, between the batch's decode steps (one thread does both).
 * - ThreadPrefiller (./prefill-thread-client.ts) runs them on a session of its own in another thread
 *   (./prefill-thread.ts), so a prompt's prefill no longer stalls the running samples: on a machine with a core to
 *   spare, prefill and decode overlap.
 *
 * Either way a prompt's prefill is bit for bit its prefill alone on the engine's session (./batch-prefill.ts; the
 * thread's session is checked against it at load: prefillsAgree).
 */
import { prefillTogether, samePrefill } from "./batch-prefill";
import type { MaskedForward } from "./capacity-quantum";
import type { Prefill } from "./prefill-cache";

export interface Prefiller {
  readonly where: "inline" | "thread";
  /** Whether its forwards run beside the batch's decode steps (a thread) rather than between them. */
  readonly concurrent: boolean;
  /** The prefills of `prompts` (each non-empty), in order, computed together. */
  prefill(prompts: number[][]): Promise<Prefill[]>;
  /** Ends what the prefiller holds (its thread); prefill() is not called after. */
  close(): Promise<void>;
}

export class InlinePrefiller implements Prefiller {
  readonly where = "inline";
  readonly concurrent = false;

  constructor(private readonly model: MaskedForward) {}

  prefill(prompts: number[][]): Promise<Prefill[]> {
    return prefillTogether(this.model, prompts);
  }

  async close(): Promise<void> {}
}

/** Prompts of mixed lengths (deterministic), prefilled alone and together by both prefillers to compare them. */
const PROBE_PROMPTS = [5, 19, 33].map((n, p) => Array.from({ length: n }, (_, i) => (i * 7 + p * 13 + 1) % 97));

/** Whether `candidate` gives, bit for bit, the prefills `reference` gives, alone and together. */
export async function prefillsAgree(reference: Prefiller, candidate: Prefiller, vocabSize: number): Promise<boolean> {
  const prompts = PROBE_PROMPTS.map((prompt) => prompt.map((id) => id % vocabSize));
  for (const group of [prompts.slice(0, 1), prompts]) {
    const [a, b] = await Promise.all([reference.prefill(group), candidate.prefill(group)]);
    if (!a.every((prefill, i) => samePrefill(prefill, b[i]))) return false;
  }
  return true;
}
