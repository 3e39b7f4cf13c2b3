"""Export a model folder to `model.onnx` with the soft-token input and the KV cache (docs/CONTRACTS.md "ONNX model").

    gpu-worker/.venv/bin/python -m softgrpo.export_onnx models/tiny [--out models/tiny/model.onnx] [--check] [--full]

Inputs:  ids int64 [B,T,k], weights float32 [B,T,k], attention_mask int64 [B,P+T], position_ids int64 [B,T],
         past_key_values.{i}.key / .value float32 [B,n_kv,P,hd]   (P may be 0: the prefill call)
Outputs: logits float32 [B,T,V], present.{i}.key / .value float32 [B,n_kv,P+T,hd]
B, T, k and P are dynamic. float32, opset 18, torch.export (dynamo) exporter. `--check` runs onnxruntime against
PyTorch on a prefill + decode and prints the max abs difference. Models over 1.5 GB of weights are written with
external data (model.onnx.data beside model.onnx).

The dynamo exporter takes 20-60 s even for the tiny model, and every checkpoint of a run has the same graph, so
`export` runs it once per architecture (softgrpo.onnx_template: a verified graph, cached in-process and on disk)
and then only writes the weights. `--full` (and `export_full`) always runs the exporter.
"""

import argparse
import copy
import logging
from pathlib import Path

import torch
import torch.nn as nn

from softgrpo.model import SoftTokenLM

OPSET = 18
BIG_MODEL_BYTES = 1.5e9  # float32 weights above this go to model.onnx.data (protobuf files stop at 2 GB)
log = logging.getLogger(__name__)


def input_names(n_layers: int) -> list[str]:
    return ["ids", "weights", "attention_mask", "position_ids"] + [
        f"past_key_values.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")
    ]


def output_names(n_layers: int) -> list[str]:
    return ["logits"] + [f"present.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]


class FlatCacheModel(nn.Module):
    """SoftTokenLM with the cache as flat positional tensors in and out (the ONNX signature)."""

    def __init__(self, model: SoftTokenLM):
        super().__init__()
        self.model = model

    def forward(self, ids, weights, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        out = self.model(ids, weights, attention_mask, position_ids, past_key_values=past, use_cache=True)
        return (out.logits, *[t for kv in out.past_key_values for t in kv])


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
            FlatCacheModel(model).eval(),
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


def check_with_onnxruntime(model: SoftTokenLM, onnx_path: str | Path) -> float:
    """Prefill (P=0) and one decode step through onnxruntime vs PyTorch; returns the max abs logits difference."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch was given, not every core
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    cfg = model.cfg
    B, T, k = 2, 5, 3
    inputs = example_inputs(model, B=B, T=T, k=k, P=0)
    feeds = dict(zip(input_names(cfg.num_hidden_layers), (t.numpy() for t in inputs)))
    outs = session.run(None, feeds)
    with torch.no_grad():
        ref = model(*inputs[:4], use_cache=True)
    err = float(np.abs(outs[0] - ref.logits.numpy()).max())
    step = example_inputs(model, B=B, T=1, k=k, P=0)[:2]
    mask = np.ones((B, T + 1), dtype=np.int64)
    positions = np.full((B, 1), T, dtype=np.int64)
    feeds = dict(zip(input_names(cfg.num_hidden_layers), [step[0].numpy(), step[1].numpy(), mask, positions, *outs[1:]]))
    logits = session.run(["logits"], feeds)[0]
    with torch.no_grad():
        ref2 = model(*step, torch.from_numpy(mask), torch.from_numpy(positions), past_key_values=ref.past_key_values)
    return max(err, float(np.abs(logits - ref2.logits.numpy()).max()))


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
        print(f"onnxruntime vs PyTorch max |logits diff| = {check_with_onnxruntime(model, path):.2e}")


if __name__ == "__main__":
    main()
