/**
 * The Node engine against PyTorch on the bundled tiny model (models/tiny, or TINY_MODEL_DIR), with one Python
 * process (tests/engine/torch_reference.py in gpu-worker/.venv):
 * - onnxruntime-node logits of model.onnx equal softgrpo.model's within 1e-4 on soft and discrete inputs, with and
 *   without the KV cache;
 * - the remote engine (src/engine/remote-engine.ts) against the real `serve` process (softgrpo.rollout):
 * - with noise off, the Node engine and softgrpo.rollout decode the same tokens; in discrete mode and with Gumbel
 *   noise on, the shared Philox keying makes them decode the same tokens too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../../src/engine/onnx-engine";
import { emptyCache } from "../../src/engine/kv-cache";
import { RemoteEngine } from "../../src/engine/remote-engine";
import type { GenerationRequest } from "../../src/engine/types";

const ROOT = resolve(__dirname, "../..");
const FOLDER = resolve(ROOT, process.env.TINY_MODEL_DIR ?? "models/tiny");
const PYTHON = join(ROOT, "gpu-worker/.venv/bin/python");

/** A small deterministic generator for test inputs (not the sampler's Philox). */
function lcg(seed: number) {
  let state = seed >>> 0;
  return () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function softInputs(B: number, T: number, k: number, vocab: number, seed: number) {
  const rand = lcg(seed);
  const ids: number[][][] = [];
  const weights: number[][][] = [];
  for (let b = 0; b < B; b++) {
    ids.push([]);
    weights.push([]);
    for (let t = 0; t < T; t++) {
      const raw = Array.from({ length: k }, () => rand() + 0.05);
      const sum = raw.reduce((a, c) => a + c, 0);
      ids[b].push(Array.from({ length: k }, () => Math.floor(rand() * vocab)));
      weights[b].push(raw.map((w) => Math.fround(w / sum)));
    }
  }
  return { ids, weights };
}

const FORWARDS = (vocab: number) => [
  { name: "soft_no_cache", ...softInputs(2, 6, 4, vocab, 1), split: null },
  { name: "soft_with_cache", ...softInputs(2, 6, 4, vocab, 2), split: 4 },
  { name: "discrete_no_cache", ...softInputs(3, 5, 1, vocab, 3), split: null },
  { name: "discrete_with_cache", ...softInputs(3, 5, 1, vocab, 4), split: 3 },
];

const MESSAGES = [{ role: "user" as const, content: "Mia has 7 apples. She buys 3 more. How many apples does Mia have now?" }];
const SOFT = { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0, max_topk: 5, gumbel_tau: 0.1, max_thinking_tokens: 48, cold_stop: null };
const GENERATIONS: GenerationRequest[] = [
  // "noise off" pairs plain Soft Thinking with Philox-sampled answers: still a deterministic function of the seed
  { messages: MESSAGES, mode: "soft", soft_thinking: { ...SOFT, noise_scale: 0 }, answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 }, max_tokens: 64, seed: 11, samples: [0, 1] },
  { messages: MESSAGES, mode: "discrete", soft_thinking: { ...SOFT, noise_scale: 0 }, answer: { temperature: 0.7, top_k: 0, top_p: 1, min_p: 0 }, max_tokens: 64, seed: 11, samples: [0, 3] },
  { messages: MESSAGES, mode: "soft", soft_thinking: { ...SOFT, noise_scale: 1 }, answer: { temperature: 1, top_k: 5, top_p: 0.95, min_p: 0 }, max_tokens: 64, seed: 5, samples: [0, 1, 2, 3] },
];

let engine: OnnxEngine;
let remote: RemoteEngine;
let python: ChildProcess | undefined;
let reference: { forwards: Record<string, number[]> };
let forwards: ReturnType<typeof FORWARDS>;
const work = mkdtempSync(join(tmpdir(), "onnx-parity-"));

/** Starts torch_reference.py; resolves with the port of its serve process once the logits are written. */
function startReference(): Promise<number> {
  const args = [join(ROOT, "tests/engine/torch_reference.py"), join(work, "tasks.json"), join(work, "out.json")];
  python = spawn(PYTHON, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  python.stderr!.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolvePort, reject) => {
    let stdout = "";
    python!.stdout!.on("data", (chunk) => {
      stdout += chunk;
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line) resolvePort(JSON.parse(line).port);
    });
    python!.on("exit", (code) => reject(new Error(`torch_reference.py exited with ${code}: ${stderr.slice(-2000)}`)));
  });
}

beforeAll(async () => {
  engine = await OnnxEngine.load(FOLDER, { modelId: "tiny" });
  forwards = FORWARDS(engine.geometry.vocabSize);
  writeFileSync(join(work, "tasks.json"), JSON.stringify({ folder: FOLDER, model_id: "tiny", forwards }));
  const port = await startReference();
  reference = JSON.parse(readFileSync(join(work, "out.json"), "utf8"));
  remote = new RemoteEngine({ modelId: "tiny", url: `http://127.0.0.1:${port}`, contextLength: engine.describe().context_length });
}, 300_000);

afterAll(async () => {
  python?.kill();
  await engine?.release();
  rmSync(work, { recursive: true, force: true });
});

async function nodeLogits(f: ReturnType<typeof FORWARDS>[number]): Promise<Float32Array> {
  const [B, T, k] = [f.ids.length, f.ids[0].length, f.ids[0][0].length];
  const pick = (from: number, to: number) => ({
    ids: BigInt64Array.from(f.ids.flatMap((row) => row.slice(from, to).flat()), (v) => BigInt(v)),
    weights: Float32Array.from(f.weights.flatMap((row) => row.slice(from, to).flat())),
    positions: f.ids.map(() => Array.from({ length: to - from }, (_, i) => from + i)),
  });
  const split = f.split ?? T;
  const first = pick(0, split);
  const a = await engine.forward(first.ids, first.weights, [B, split, k], emptyCache(engine.geometry, B), first.positions);
  if (split === T) return a.logits;
  const second = pick(split, T);
  const b = await engine.forward(second.ids, second.weights, [B, T - split, k], a.fresh, second.positions); // a prefill's fresh keys are its whole cache
  const V = engine.geometry.vocabSize;
  const out = new Float32Array(B * T * V);
  for (let r = 0; r < B; r++) {
    out.set(a.logits.subarray(r * split * V, (r + 1) * split * V), r * T * V);
    out.set(b.logits.subarray(r * (T - split) * V, (r + 1) * (T - split) * V), (r * T + split) * V);
  }
  return out;
}

describe("onnxruntime-node logits equal PyTorch", () => {
  it.each(["soft_no_cache", "soft_with_cache", "discrete_no_cache", "discrete_with_cache"])("%s within 1e-4", async (name) => {
    const f = forwards.find((x) => x.name === name)!;
    const ours = await nodeLogits(f);
    const theirs = reference.forwards[name];
    expect(ours.length).toBe(theirs.length);
    let maxError = 0;
    for (let i = 0; i < ours.length; i++) maxError = Math.max(maxError, Math.abs(ours[i] - theirs[i]));
    console.log(`parity ${name}: max |onnx - torch| = ${maxError.toExponential(2)}`);
    expect(maxError).toBeLessThan(1e-4);
  });
});

describe("Node engine decodes the same tokens as softgrpo.rollout behind the remote engine", () => {
  it.each([
    [0, "soft, noise off"],
    [1, "discrete"],
    [2, "soft with Gumbel noise and sampled answers (shared Philox)"],
  ])("request %i: %s", async (index) => {
    const ours = await engine.generate(GENERATIONS[index]);
    const theirs = await remote.generate(GENERATIONS[index]);
    expect(ours.samples.map((s) => s.token_ids)).toEqual(theirs.samples.map((s) => s.token_ids));
    expect(ours.samples.map((s) => [s.reasoning, s.answer, s.reasoning_tokens, s.answer_tokens, s.finish_reason, s.thinking_end])).toEqual(
      theirs.samples.map((s) => [s.reasoning, s.answer, s.reasoning_tokens, s.answer_tokens, s.finish_reason, s.thinking_end]),
    );
    expect(ours.prompt_tokens).toBe(theirs.prompt_tokens);
    expect(ours.samples.every((s) => s.token_ids.length > 0)).toBe(true);
  });

  it("agree on greedy answers cut at a stop string, with the same logprobs (temperature 0, noise off)", async () => {
    const greedy: GenerationRequest = {
      ...GENERATIONS[0],
      answer: { temperature: 0, top_k: 5, top_p: 0.95, min_p: 0 },
      stop: ["{1", "never"],
      logprobs: 3,
    };
    const ours = await engine.generate(greedy);
    const theirs = await remote.generate(greedy);
    const shape = (s: (typeof ours.samples)[number]) => [s.token_ids, s.answer, s.answer_tokens, s.finish_reason];
    expect(ours.samples.map(shape)).toEqual(theirs.samples.map(shape));
    expect(ours.samples[0].finish_reason).toBe("stop"); // the tiny model answers "\n\\boxed{10}": cut before "{1"
    for (const [s, t] of ours.samples.map((s, i) => [s, theirs.samples[i]] as const)) {
      const tokens = (x: typeof s) => x.logprobs!.map((e) => [e.token, e.bytes, e.top_logprobs.map((c) => c.bytes)]);
      expect(tokens(s)).toEqual(tokens(t));
      expect(s.logprobs).toHaveLength(s.answer_tokens);
      s.logprobs!.forEach((e, i) => {
        expect(e.logprob).toBeCloseTo(t.logprobs![i].logprob, 4);
        e.top_logprobs.forEach((c, j) => expect(c.logprob).toBeCloseTo(t.logprobs![i].top_logprobs[j].logprob, 4));
      });
    }
  });

  it("answers a prompt over the context length with an input error naming the field, on both engines", async () => {
    const tooLong = { ...GENERATIONS[0], messages: [{ role: "user" as const, content: "7 + ".repeat(engine.describe().context_length) }] };
    await expect(engine.generate(tooLong)).rejects.toMatchObject({ name: "EngineInputError", param: "messages" });
    await expect(remote.generate(tooLong)).rejects.toMatchObject({ name: "EngineInputError", param: "messages" });
  });
});
