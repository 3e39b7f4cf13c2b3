/**
 * One onnxruntime-node session of a model folder's model.onnx, as the engine calls it: a masked forward of B rows x
 * T positions (k mixed-token slots each) after a key-value cache, returning the logits and the fresh keys and values
 * (./kv-cache.ts). The engine's decode session and its prefill thread (./prefill-thread.ts) each open one with the
 * same options, so the same inputs give the same bits on both.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { MaskedForward } from "./capacity-quantum";
import { fetchNames, freshFromOutputs, graphVersion, type GraphVersion, type KvCache } from "./kv-cache";
import { raiseMmapThreshold } from "./malloc-threshold";
import type { ModelGeometry } from "./model-folder";

export interface ForwardOutput {
  logits: Float32Array; // [B, T, V]
  fresh: KvCache; // the keys and values of the T positions, [B, H, T, D]
}

export class OnnxForward implements MaskedForward {
  private readonly fetches: string[];

  private constructor(
    readonly session: ort.InferenceSession,
    readonly geometry: ModelGeometry,
    readonly graphVersion: GraphVersion,
  ) {
    this.fetches = fetchNames(geometry.numLayers, graphVersion);
  }

  /** Opens the folder's model.onnx: `intraOpThreads` onnxruntime threads (default 1), every graph optimisation. */
  static async open(folder: string, geometry: ModelGeometry, intraOpThreads = 1): Promise<OnnxForward> {
    const session = await ort.InferenceSession.create(join(folder, "model.onnx"), {
      intraOpNumThreads: intraOpThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
    });
    const version = graphVersion(session.outputNames);
    if (version === null) {
      await session.release();
      throw new Error(`model folder ${folder}: model.onnx has neither new.0.key nor present.0.key among its outputs (docs/CONTRACTS.md "ONNX model")`);
    }
    raiseMmapThreshold(); // output buffers reuse heap memory instead of being mapped afresh every step
    return new OnnxForward(session, geometry, version);
  }

  /** One forward of B rows x T positions (k slots each) after a cache of length P; `mask` [B, P+T] (default ones). */
  forward: MaskedForward["forward"] = async (ids, weights, dims, cache, positions, mask): Promise<ForwardOutput> => {
    const [batch, length] = dims;
    const past = Object.values(cache)[0]?.dims[2] as number;
    const total = past + length;
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor("int64", ids, dims),
      weights: new ort.Tensor("float32", weights, dims),
      attention_mask: new ort.Tensor("int64", mask ?? new BigInt64Array(batch * total).fill(1n), [batch, total]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat(), (p) => BigInt(p)), [batch, length]),
      ...cache,
    };
    const outputs = await this.session.run(feeds, this.fetches);
    return { logits: (outputs.logits as ort.Tensor).data as Float32Array, fresh: freshFromOutputs(outputs, this.geometry.numLayers, this.graphVersion, length) };
  };

  release(): Promise<void> {
    return this.session.release();
  }
}
