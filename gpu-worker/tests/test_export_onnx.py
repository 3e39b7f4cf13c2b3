"""softgrpo.export_onnx: the onnxruntime graph (version 2: outputs logits and the new keys/values, the caller keeps
the cache) equals PyTorch (soft and discrete inputs, cache, left padding) and never concatenates the cache.

`export` writes the weights into the architecture's cached graph (softgrpo.onnx_template), built here from a random
stand-in model, so the model below (with its own perturbed biases and norms) is a checkpoint the exporter never saw."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from softgrpo.export_onnx import concat_input_shapes, export, input_names, output_names
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
    """logits, and per layer the new (key, value) [B, n_kv, T, hd] of the T input positions."""
    feeds = [ids, weights, mask, positions] + [t for kv in past for t in kv]
    outs = session.run(output_names(L), dict(zip(input_names(L), (np.asarray(t) for t in feeds))))
    return outs[0], [(outs[1 + 2 * i], outs[2 + 2 * i]) for i in range(L)]


def append(past, new):
    """The caller-kept cache: each layer's past with the new keys/values appended along the position axis."""
    return [(np.concatenate([pk, nk], 2), np.concatenate([pv, nv], 2)) for (pk, pv), (nk, nv) in zip(past, new)]


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
    assert [o.name for o in graph.output] == output_names(L) == ["logits", "new.0.key", "new.0.value", "new.1.key",
                                                                 "new.1.value"]
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert all(isinstance(d, str) for d in dims["ids"]) and isinstance(dims["past_key_values.0.key"][2], str)
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("soft,k", [(True, 3), (False, 5), (True, 1)])
def test_prefill_with_zero_length_past_and_left_padding_equals_pytorch(exported, soft, k):
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([6, 3, 1], k, soft)
    logits, new = run_ort(session, ids, weights, mask, positions, empty_past(3))
    with torch.no_grad():
        ref = model(ids, weights, mask, positions, use_cache=True)
    real = mask.bool()  # padded positions are not compared: their outputs are unused
    assert max_diff(logits[real.numpy()], ref.logits[real]) < TOL
    for (k_ort, v_ort), (k_ref, v_ref) in zip(new, ref.past_key_values):
        assert k_ort.shape == (3, N_KV, 6, HD)
        assert max_diff(k_ort, k_ref) < TOL and max_diff(v_ort, v_ref) < TOL


def test_decode_steps_with_the_caller_kept_cache_equal_pytorch_full_forward(exported):
    """Prefill, then soft decode steps, the cache kept outside the graph (new.* appended in numpy between steps);
    row 1 is left-padded by 3, so its mask hides cache columns in every step."""
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([5, 2], 4, soft=True, seed=1)
    steps = left_padded_batch([4, 4], 4, soft=True, seed=2)
    logits, new = run_ort(session, ids, weights, mask, positions, empty_past(2))
    past, full_mask, got = append(empty_past(2), new), mask, []
    for t in range(4):  # one soft step at a time
        full_mask = torch.cat([full_mask, torch.ones(2, 1, dtype=torch.long)], 1)
        pos = full_mask.sum(-1, keepdim=True) - 1
        logits, new = run_ort(session, steps[0][:, t : t + 1], steps[1][:, t : t + 1], full_mask, pos, past)
        assert new[0][0].shape == (2, N_KV, 1, HD)  # only the step's own position comes back
        past = append(past, new)
        got.append(logits)
    with torch.no_grad():
        all_ids, all_w = torch.cat([ids, steps[0]], 1), torch.cat([weights, steps[1]], 1)
        ref = model(all_ids, all_w, full_mask, (full_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)
    assert max_diff(np.concatenate(got, 1), ref.logits[:, -4:]) < TOL
    assert past[0][0].shape == (2, N_KV, 9, HD)
    real = full_mask.bool()  # the padded columns of row 1 hold keys of padding, unused (masked) by both
    for (k_kept, v_kept), (k_ref, v_ref) in zip(past, ref.past_key_values):
        assert max_diff(k_kept.transpose(0, 2, 1, 3)[real.numpy()], k_ref.transpose(1, 2)[real]) < TOL
        assert max_diff(v_kept.transpose(0, 2, 1, 3)[real.numpy()], v_ref.transpose(1, 2)[real]) < TOL


def test_prefill_on_top_of_a_nonempty_past_equals_pytorch(exported):
    model, session, _ = exported
    ids, weights, mask, positions = left_padded_batch([3, 3], 2, soft=False, seed=3)
    more = left_padded_batch([4, 4], 2, soft=True, seed=4)
    _, new = run_ort(session, ids, weights, mask, positions, empty_past(2))
    full_mask = torch.ones(2, 7, dtype=torch.long)
    past = append(empty_past(2), new)
    logits, new = run_ort(session, more[0], more[1], full_mask, torch.arange(3, 7).expand(2, 4), past)
    with torch.no_grad():
        ref = model(torch.cat([ids, more[0]], 1), torch.cat([weights, more[1]], 1), use_cache=True)
    assert max_diff(logits, ref.logits[:, 3:]) < TOL
    for (k_ort, v_ort), (k_ref, v_ref) in zip(new, ref.past_key_values):  # the columns of the 4 new positions
        assert k_ort.shape == (2, N_KV, 4, HD)
        assert max_diff(k_ort, k_ref[:, :, 3:]) < TOL and max_diff(v_ort, v_ref[:, :, 3:]) < TOL


def test_graph_never_concatenates_the_cache(exported):
    """No Concat takes a cache-sized input: measured by onnxruntime with a past of P=11 positions (B=2, T=3; the
    head size is 8, so a [.., 11, 8] input is a cache); the past K/V inputs reach only MatMuls (K through its
    Transpose, which onnxruntime fuses into the MatMul) and Shape; the only Concat with the past length in its
    inputs is the one of the scores, [q K_past^T, q K_new^T]: columns P then T."""
    _, _, path = exported
    shapes = concat_input_shapes(path, B=2, T=3, P=11)
    assert shapes and not [s for _, inputs in shapes for s in inputs if 11 in s and s[-1] == HD]
    with_past = [inputs for _, inputs in shapes if any(11 in s for s in inputs)]
    assert with_past == [[[2, N_KV, 2 * 3, 11], [2, N_KV, 2 * 3, 3]]] * L  # [B, n_kv, g*T, P], [.., T]; g = 2
    graph = onnx.load(str(path)).graph
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for i in range(L):
        for kv in ("key", "value"):
            ops = [n.op_type for n in consumers[f"past_key_values.{i}.{kv}"]]
            ops += [m.op_type for n in consumers[f"past_key_values.{i}.{kv}"] if n.op_type == "Transpose"
                    for m in consumers[n.output[0]]]
            assert set(ops) <= {"MatMul", "Transpose", "Shape"} and "MatMul" in ops, (i, kv, ops)
    assert sum(n.op_type == "Softmax" for n in graph.node) == L  # one softmax per layer over [past, new] columns


def test_onnxruntime_fuses_every_rms_norm(exported, tmp_path):
    """Each RMSNorm (two per layer and the final one) becomes one SimplifiedLayerNormalization at load; no Reciprocal
    (the unfused x * rsqrt form) is left."""
    _, _, path = exported
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    assert ops.count("SimplifiedLayerNormalization") == 2 * L + 1
    assert "Reciprocal" not in ops
