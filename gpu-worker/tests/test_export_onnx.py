"""softgrpo.export_onnx: the onnxruntime graph equals PyTorch (soft and discrete inputs, cache, left padding).

`export` writes the weights into the architecture's cached graph (softgrpo.onnx_template), built here from a random
stand-in model, so the model below (with its own perturbed biases and norms) is a checkpoint the exporter never saw."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from softgrpo.export_onnx import export, input_names, output_names
from softgrpo.model import SoftTokenLM

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores
CONFIG = dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], vocab_size=61, hidden_size=32,
              intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128, tie_word_embeddings=False, rope_theta=10000.0)
TOL = 1e-4
L, N_KV, HD = 2, 2, 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = SoftTokenLM.from_config(CONFIG, seed=0)
    with torch.no_grad():  # non-trivial biases and norms
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    path = export(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return model, ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), path


def run_ort(session, ids, weights, mask, positions, past):
    feeds = [ids, weights, mask, positions] + [t for kv in past for t in kv]
    outs = session.run(None, dict(zip(input_names(L), (np.asarray(t) for t in feeds))))
    return outs[0], [(outs[1 + 2 * i], outs[2 + 2 * i]) for i in range(L)]


def empty_past(B):
    return [(np.zeros((B, N_KV, 0, HD), np.float32), np.zeros((B, N_KV, 0, HD), np.float32)) for _ in range(L)]


def left_padded_batch(lengths, k, soft: bool, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    ids = torch.randint(0, 61, (B, T, k), generator=g)
    if soft:
        weights = torch.softmax(torch.randn(B, T, k, generator=g), -1)
    else:
        ids[..., 1:] = 0
        weights = torch.zeros(B, T, k)
        weights[..., 0] = 1
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, T - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, weights, mask, positions


def max_diff(a, b):
    return float(np.abs(np.asarray(a) - b.numpy()).max())


def test_graph_has_contract_names_float32_and_dynamic_axes(exported):
    _, _, path = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == input_names(L)
    assert [o.name for o in graph.output] == output_names(L)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert all(isinstance(d, str) for d in dims["ids"]) and isinstance(dims["past_key_values.0.key"][2], str)
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("soft,k", [(True, 3), (False, 5), (True, 1)])
def test_prefill_with_zero_length_past_and_left_padding_equals_pytorch(exported, soft, k):
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([6, 3, 1], k, soft)
    logits, present = run_ort(session, ids, weights, mask, positions, empty_past(3))
    with torch.no_grad():
        ref = model(ids, weights, mask, positions, use_cache=True)
    real = mask.bool()  # padded positions are not compared: their outputs are unused
    assert max_diff(logits[real.numpy()], ref.logits[real]) < TOL
    for (k_ort, v_ort), (k_ref, v_ref) in zip(present, ref.past_key_values):
        assert k_ort.shape == (3, N_KV, 6, HD)
        assert max_diff(k_ort, k_ref) < TOL and max_diff(v_ort, v_ref) < TOL


def test_decode_steps_with_cache_equal_pytorch_full_forward(exported):
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([5, 2], 4, soft=True, seed=1)
    steps = left_padded_batch([4, 4], 4, soft=True, seed=2)
    logits, past = run_ort(session, ids, weights, mask, positions, empty_past(2))
    full_mask, got = mask, []
    for t in range(4):  # one soft step at a time, feeding back onnxruntime's own cache
        full_mask = torch.cat([full_mask, torch.ones(2, 1, dtype=torch.long)], 1)
        pos = full_mask.sum(-1, keepdim=True) - 1
        logits, past = run_ort(session, steps[0][:, t : t + 1], steps[1][:, t : t + 1], full_mask, pos, past)
        got.append(logits)
    with torch.no_grad():
        all_ids, all_w = torch.cat([ids, steps[0]], 1), torch.cat([weights, steps[1]], 1)
        ref = model(all_ids, all_w, full_mask, (full_mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -4:]
    assert max_diff(np.concatenate(got, 1), ref) < TOL
    assert past[0][0].shape == (2, N_KV, 9, HD)


def test_prefill_on_top_of_a_nonempty_past_equals_pytorch(exported):
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([3, 3], 2, soft=False, seed=3)
    more = left_padded_batch([4, 4], 2, soft=True, seed=4)
    _, past = run_ort(session, ids, weights, mask, positions, empty_past(2))
    full_mask = torch.ones(2, 7, dtype=torch.long)
    logits, _ = run_ort(session, more[0], more[1], full_mask, torch.arange(3, 7).expand(2, 4), past)
    with torch.no_grad():
        ref = model(torch.cat([ids, more[0]], 1), torch.cat([weights, more[1]], 1)).logits[:, 3:]
    assert max_diff(logits, ref) < TOL
