/**
 * One decode forward of the rows of an engine-kept cache (./cache-buffer.ts): row r takes inputs[r] (k mixed tokens;
 * narrower inputs padded with id 0, weight 0) at its own position, its length, and sees its own columns; the fresh
 * keys and values are appended. The continuous batch, the unbatched engine and the capacity probe all step here.
 */
import type { CacheBuffer } from "./cache-buffer";
import type { MaskedForward } from "./capacity-quantum";
import type { ModelInput } from "./sample-decoder";

/** The logits [rows, V] of the step. */
export async function decodeStep(model: MaskedForward, cache: CacheBuffer, inputs: ModelInput[]): Promise<Float32Array> {
  if (inputs.length !== cache.rows) throw new RangeError(`${inputs.length} inputs for ${cache.rows} rows`);
  const { ids, weights, k } = packInputs(inputs);
  const positions = inputs.map((_, r) => [cache.length(r)]);
  const out = await model.forward(ids, weights, [inputs.length, 1, k], cache.tensors(), positions, cache.mask());
  cache.append(out.fresh);
  return out.logits;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
if (!LITTLE_ENDIAN) throw new Error("decode-step packs int64 ids as little-endian words; this platform is big-endian");

/** [B, 1, k] ids and weights, k the widest input. */
function packInputs(inputs: ModelInput[]): { ids: BigInt64Array; weights: Float32Array; k: number } {
  let k = 1;
  for (const input of inputs) k = Math.max(k, input.ids.length);
  const ids = new BigInt64Array(inputs.length * k);
  const words = new Uint32Array(ids.buffer); // little-endian int64: the id in the low word (ids are below 2^31), 0 above
  const weights = new Float32Array(inputs.length * k);
  for (let r = 0; r < inputs.length; r++) {
    const input = inputs[r];
    for (let i = 0; i < input.ids.length; i++) {
      words[2 * (r * k + i)] = input.ids[i];
      weights[r * k + i] = input.weights[i];
    }
  }
  return { ids, weights, k };
}
