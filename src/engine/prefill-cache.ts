/**
 * Recent prompt prefills of one engine, by their exact token ids, least recently used first out: a prompt decoded
 * again (the next wave of an adaptive vote, the same question asked twice) starts from the keys and logits computed
 * the first time instead of another prefill. Reuse is exact: the entry is the very output of that prefill, read
 * only (rows copy their keys out of it). Bounded by entries and by bytes.
 */
import type { KvCache } from "./kv-cache";

export interface Prefill {
  cache: KvCache; // [1, H, p, D] per layer and key/value
  logits: Float32Array; // [V] of the last prompt position
}

export class PrefillCache {
  private readonly entries = new Map<string, { prefill: Prefill; bytes: number }>();
  private bytes = 0;
  hits = 0;

  constructor(
    private readonly maxEntries = 64,
    private readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  get(promptIds: number[]): Prefill | undefined {
    const key = promptIds.join(",");
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key); // most recently used last
    this.entries.set(key, entry);
    this.hits++;
    return entry.prefill;
  }

  set(promptIds: number[], prefill: Prefill): void {
    const bytes = prefill.logits.byteLength + Object.values(prefill.cache).reduce((sum, t) => sum + (t.data as Float32Array).byteLength, 0);
    if (bytes > this.maxBytes || this.maxEntries === 0) return;
    const key = promptIds.join(",");
    const old = this.entries.get(key);
    if (old) this.bytes -= old.bytes;
    this.entries.delete(key);
    this.entries.set(key, { prefill, bytes });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
