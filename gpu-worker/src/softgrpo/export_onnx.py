"""Export a model folder to `model.onnx` with the soft-token input and the KV cache (docs/CONTRACTS.md "ONNX model").

    gpu-worker/.venv/bin/python -m softgrpo.export_onnx models/tiny [--out models/tiny/model.onnx] [--check] [--full]

Graph version 2 (GRAPH_VERSION): the caller keeps the KV cache; the graph returns only the new keys and values.
Inputs:  ids int64 [B,T,k], weights float32 [B,T,k], attention_mask int64 [B,P+T], position_ids int64 [B,T],
         past_key_values.{i}.key / .value float32 [B,n_kv,P,hd]   (P may be 0: the prefill call)
Outputs: logits float32 [B,T,V], new.{i}.key / .value float32 [B,n_kv,T,hd] (the rotated keys and the values of the
         T input positions; the caller appends them to its cache for the next call)
B, T, k and P are dynamic. float32, opset 18, torch.export (dynamo) exporter. The attention never concatenates the
cache (SplitCacheModel): scores = Concat([q K_past^T, q K_new^T], -1) * scale + mask bias, one softmax over the
P+T columns, out = probs[..., :P] V_past + probs[..., P:] V_new. Version 1 graphs (before this) returned
present.{i}.key / .value [B,n_kv,P+T,hd], the whole cache, concatenated in the graph.
`--check` runs onnxruntime against PyTorch on a prefill + decode and prints the max abs differences. Models over
1.5 GB of weights are written with external data (model.onnx.data beside model.onnx).

The dynamo exporter takes 20-60 s even for the tiny model, and every checkpoint of a run has the same graph, so
`export` runs it once per architecture (softgrpo.onnx_template: a verified graph, cached in-process and on disk)
and then only writes the weights. `--full` (and `export_full`) always runs the exporter.
"""

import argparse
import copy
import logging
import math
from pathlib import Path

import torch
import torch.nn as nn

from softgrpo.model import Attention, RMSNorm, SoftTokenLM, attention_bias, rotary_cos_sin

OPSET = 18
GRAPH_VERSION = 2  # 1: outputs present.{i}.* (the whole cache); 2: outputs new.{i}.* (the caller keeps the cache)
BIG_MODEL_BYTES = 1.5e9  # float32 weights above this go to model.onnx.data (protobuf files stop at 2 GB)
log = logging.getLogger(__name__)


def input_names(n_layers: int) -> list[str]:
    return ["ids", "weights", "attention_mask", "position_ids"] + [
        f"past_key_values.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")
    ]


def output_names(n_layers: int) -> list[str]:
    return ["logits"] + [f"new.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]


def split_cache_attention(attn: Attention, x, cos, sin, bias, past_k, past_v):
    """attn's self-attention of x [B,T,d] over the cache past_k/v [B,n_kv,P,hd] and its own T positions, without
    concatenating the cache: one softmax over the score columns [past 0..P-1, new 0..T-1], then two value products
    added. bias [B,1,T,P+T] additive (attention_bias). Returns (out [B,T,d], k, v [B,n_kv,T,hd] of the T positions).
    Query heads j*g .. j*g+g-1 share kv head j (as Attention.forward): they are folded into the rows of kv head j,
    so the cache is never repeated either."""
    B, T, _ = x.shape
    q, k, v = attn.project(x, cos, sin)
    n_kv, hd, g = attn.n_kv, attn.hd, attn.n_heads // attn.n_kv
    P = past_k.shape[2]
    qg = q.reshape(B, n_kv, g * T, hd)  # [B, n_kv, g*T, hd]: head j*g+r, query t at row r*T+t
    scores = torch.cat([qg @ past_k.transpose(2, 3), qg @ k.transpose(2, 3)], dim=-1)  # [B, n_kv, g*T, P+T]
    scores = scores.view(B, attn.n_heads, T, P + T) * (1.0 / math.sqrt(hd)) + bias
    probs = torch.softmax(scores, dim=-1).view(B, n_kv, g * T, P + T)
    out = probs[..., :P] @ past_v + probs[..., P:] @ v  # [B, n_kv, g*T, hd]
    out = out.view(B, attn.n_heads, T, hd).transpose(1, 2).reshape(B, T, attn.n_heads * hd)
    return attn.o_proj(out), k, v


def fusable_rms_norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """norm(x) in float32 written as weight * (x / sqrt(mean(x^2) + eps)): the pattern onnxruntime fuses into one
    SimplifiedLayerNormalization at load. The model's x * rsqrt(...) exports as Sqrt, Reciprocal and Mul, which it
    does not fuse, leaving seven operators per norm (a lone decode step 9% slower, a prefill 6%)."""
    return norm.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))


class SplitCacheModel(nn.Module):
    """The ONNX signature (version 2) of SoftTokenLM: the cache as flat positional tensors in, logits and the new
    keys/values out. Export only: the layers' own norms (as fusable_rms_norm), projections, rotary embedding and MLP
    with split_cache_attention in place of Attention.forward (the PyTorch forward is unchanged)."""

    def __init__(self, model: SoftTokenLM):
        super().__init__()
        self.model = model

    def forward(self, ids, weights, attention_mask, position_ids, *past_flat):
        lm = self.model
        x = lm.embed(ids, weights)
        cos, sin = rotary_cos_sin(position_ids, lm.inv_freq, x.dtype)
        bias = attention_bias(attention_mask, ids.shape[1], x.dtype)
        new = []
        for i, layer in enumerate(lm.model.layers):
            h, k, v = split_cache_attention(layer.self_attn, fusable_rms_norm(layer.input_layernorm, x), cos, sin,
                                            bias, past_flat[2 * i], past_flat[2 * i + 1])
            x = x + h
            x = x + layer.mlp(fusable_rms_norm(layer.post_attention_layernorm, x))
            new += [k, v]
        return (lm.lm_head(fusable_rms_norm(lm.model.norm, x)), *new)


def example_inputs(model: SoftTokenLM, B=2, T=3, k=3, P=4) -> tuple[torch.Tensor, ...]:
    """Random inputs of the ONNX signature (sizes >= 2 so the exporter keeps every axis symbolic)."""
    cfg = model.cfg
    ids = torch.randint(0, cfg.vocab_size, (B, T, k))
    weights = torch.softmax(torch.randn(B, T, k), -1)
    mask = torch.ones(B, P + T, dtype=torch.long)
    positions = torch.arange(P, P + T).expand(B, T).contiguous()
    past = [torch.randn(B, cfg.num_key_value_heads, P, cfg.head_dim) for _ in range(2 * cfg.num_hidden_layers)]
    return (ids, weights, mask, positions, *past)


def export(model: SoftTokenLM, out_path: str | Path, full: bool = False) -> Path:
    """Write model.onnx (float32) of `model` to out_path: its architecture's cached graph with this model's weights,
    or the full exporter when full=True or no verified graph exists for it (then a warning says why).
    `model` is left as it is (dtype, device), and the global torch RNG is not advanced (a resumed run draws the
    same numbers as an uninterrupted one, whichever checkpoint first paid for the graph)."""
    with torch.random.fork_rng(devices=[]):
        if not full:
            from softgrpo.onnx_template import TemplateUnavailable, export_with_template

            try:
                return export_with_template(model, out_path)
            except TemplateUnavailable as reason:
                log.warning("ONNX export of %s: running the full exporter: %s", out_path, reason)
        return export_full(model, out_path)


def export_full(model: SoftTokenLM, out_path: str | Path, external_data: bool | None = None) -> Path:
    """Run torch.onnx's dynamo exporter on a float32 CPU copy of `model` (or `model` itself when it is one).
    external_data: weights in out_path + '.data' (None: only above BIG_MODEL_BYTES; model import always asks)."""
    param = next(model.parameters())
    if param.dtype != torch.float32 or param.device.type != "cpu":
        model = copy.deepcopy(model).to("cpu", torch.float32)
    model = model.eval()
    n_layers = model.cfg.num_hidden_layers
    B, T, k, P = (torch.export.Dim(n, min=0) for n in ("batch", "seq", "slots", "past"))
    dyn = torch.export.Dim.DYNAMIC
    # the signature is (ids, weights, attention_mask, position_ids, *past_flat): the past is one nested tuple
    shapes = ({0: B, 1: T, 2: k}, {0: B, 1: T, 2: k}, {0: B, 1: dyn}, {0: B, 1: T}, ({0: B, 2: P},) * (2 * n_layers))
    big = sum(p.numel() for p in model.parameters()) * 4 > BIG_MODEL_BYTES if external_data is None else external_data
    out_path = Path(out_path)
    with torch.no_grad():
        program = torch.onnx.export(
            SplitCacheModel(model).eval(),
            example_inputs(model),
            input_names=input_names(n_layers),
            output_names=output_names(n_layers),
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=big,
            verbose=False,
        )
    program.save(str(out_path), external_data=big)
    return out_path


def compare_with_onnxruntime(model: SoftTokenLM, onnx_path: str | Path) -> dict[str, float]:
    """Prefill (P=0) and one decode step through onnxruntime vs PyTorch, the decode fed the prefill's new.* as its
    past (the caller-kept cache). Max abs differences: {"logits": ..., "new_kv": ...}, new_kv comparing the graph's
    new keys/values with the columns of those positions in PyTorch's cache."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch was given, not every core
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    n_layers = model.cfg.num_hidden_layers
    names = input_names(n_layers)
    B, T, k = 2, 5, 3

    def diff(outs, ref, P):
        cache = [t[:, :, P:].numpy() for kv in ref.past_key_values for t in kv]
        kv_err = max(float(np.abs(o - c).max()) if o.shape == c.shape else float("inf")
                     for o, c in zip(outs[1:], cache))
        return float(np.abs(outs[0] - ref.logits.numpy()).max()), kv_err

    inputs = example_inputs(model, B=B, T=T, k=k, P=0)
    outs = session.run(output_names(n_layers), dict(zip(names, (t.numpy() for t in inputs))))
    with torch.no_grad():
        ref = model(*inputs[:4], use_cache=True)
    err = [diff(outs, ref, 0)]
    step = example_inputs(model, B=B, T=1, k=k, P=0)[:2]
    mask = np.ones((B, T + 1), dtype=np.int64)
    positions = np.full((B, 1), T, dtype=np.int64)
    feeds = dict(zip(names, [step[0].numpy(), step[1].numpy(), mask, positions, *outs[1:]]))
    outs2 = session.run(output_names(n_layers), feeds)
    with torch.no_grad():
        ref2 = model(*step, torch.from_numpy(mask), torch.from_numpy(positions),
                     past_key_values=ref.past_key_values, use_cache=True)
    err.append(diff(outs2, ref2, T))
    return {"logits": max(e[0] for e in err), "new_kv": max(e[1] for e in err)}


def check_with_onnxruntime(model: SoftTokenLM, onnx_path: str | Path) -> float:
    """The largest difference of compare_with_onnxruntime (logits and new keys/values)."""
    return max(compare_with_onnxruntime(model, onnx_path).values())


def concat_input_shapes(onnx_path: str | Path, B=2, T=3, k=2, P=11) -> list[tuple[str, list[list[int]]]]:
    """(Concat node name, the shapes of its inputs) of every Concat of the graph, measured by onnxruntime on a call
    with past length P (every Concat input made a graph output of a copy of the graph)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(onnx_path))
    concats = [(n.name, list(n.input)) for n in graph.graph.node if n.op_type == "Concat"]
    constants = {i.name: list(i.dims) for i in graph.graph.initializer}
    known = {o.name for o in graph.graph.output} | {i.name for i in graph.graph.input} | set(constants)
    for name in dict.fromkeys(i for _, inputs in concats for i in inputs):
        if name not in known:
            graph.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    n_kv, hd = dims["past_key_values.0.key"][1], dims["past_key_values.0.key"][3]
    n_layers = sum(1 for name in dims if name.startswith("past_key_values.")) // 2
    rng = np.random.default_rng(0)
    feeds = [rng.integers(0, 2, (B, T, k)), np.full((B, T, k), 1 / k, np.float32),
             np.ones((B, P + T), np.int64), np.tile(np.arange(P, P + T), (B, 1))]
    feeds += [rng.standard_normal((B, n_kv, P, hd)).astype(np.float32) for _ in range(2 * n_layers)]
    names = [o.name for o in graph.graph.output]
    values = dict(zip(names, session.run(names, dict(zip(input_names(n_layers), feeds)))))
    values.update(zip(input_names(n_layers), feeds))
    shapes = {**{name: list(np.shape(v)) for name, v in values.items()}, **constants}
    return [(name, [shapes[i] for i in inputs]) for name, inputs in concats]


def main():
    ap = argparse.ArgumentParser(description="Export a model folder to model.onnx (soft-token input, KV cache)")
    ap.add_argument("folder")
    ap.add_argument("--out", help="default: <folder>/model.onnx")
    ap.add_argument("--check", action="store_true", help="compare onnxruntime against PyTorch after export")
    ap.add_argument("--full", action="store_true", help="run the torch.onnx exporter even if a cached graph exists")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("softgrpo").setLevel(logging.INFO)  # not the exporter's own INFO flood
    torch.set_num_threads(2)
    model = SoftTokenLM.from_pretrained(args.folder)
    path = export(model, args.out or Path(args.folder) / "model.onnx", full=args.full)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        err = compare_with_onnxruntime(model, path)
        print(f"onnxruntime vs PyTorch max |new keys/values diff| = {err['new_kv']:.2e}")
        print(f"onnxruntime vs PyTorch max |logits diff| = {err['logits']:.2e}")


if __name__ == "__main__":
    main()
