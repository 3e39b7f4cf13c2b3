"""softgrpo.onnx_template: a checkpoint written into its architecture's cached graph equals PyTorch on its own
(fine-tuned) weights; the torch.onnx exporter runs once per architecture and a different config.json never reuses
another's graph."""
import copy
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from softgrpo import export_onnx, onnx_template
from softgrpo.export_onnx import check_with_onnxruntime, compare_with_onnxruntime, export, input_names, output_names
from softgrpo.model import SoftTokenLM, rope_inv_freq
from softgrpo.onnx_template import TemplateUnavailable, get_template, template_key, verify, write_model

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"
TOL = 1e-4
torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores


@pytest.fixture(scope="module")
def base():
    return SoftTokenLM.from_pretrained(TINY)


@pytest.fixture(scope="module")
def template(base):
    """The tiny model's template: the one full export of this module (20-60 s on 1-2 CPU threads)."""
    return get_template(base.config_dict)


def fine_tuned(base: SoftTokenLM, seed: int) -> SoftTokenLM:
    """`base` with every parameter moved by N(0, 0.02^2) noise (the tied embedding / lm_head once, still tied)."""
    model = copy.deepcopy(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def refuse_exporter(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the torch.onnx exporter ran")
    monkeypatch.setattr(export_onnx, "export_full", refuse)
    monkeypatch.setattr(torch.onnx, "export", refuse)


def soft_batch(model: SoftTokenLM, lengths: list[int], k: int, seed: int):
    """Left-padded soft-token prefill inputs: ids/weights [B,T,k], mask [B,T], positions [B,T]."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    ids = torch.randint(0, model.cfg.vocab_size, (B, T, k), generator=g)
    weights = torch.softmax(torch.randn(B, T, k, generator=g), -1)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, T - n:] = 1
    return ids, weights, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def test_fine_tuned_checkpoint_in_cached_graph_equals_pytorch_on_soft_prefill_and_decode(base, template, tmp_path):
    model = fine_tuned(base, seed=1)
    session = ort.InferenceSession(str(export(model, tmp_path / "model.onnx")), providers=["CPUExecutionProvider"])
    n_layers, (B, k) = model.cfg.num_hidden_layers, (2, 3)
    ids, weights, mask, positions = soft_batch(model, [6, 3], k, seed=2)
    empty = np.zeros((B, model.cfg.num_key_value_heads, 0, model.cfg.head_dim), np.float32)
    feeds = [ids.numpy(), weights.numpy(), mask.numpy(), positions.numpy()] + [empty] * (2 * n_layers)
    outs = session.run(output_names(n_layers), dict(zip(input_names(n_layers), feeds)))
    with torch.no_grad():
        ref = model(ids, weights, mask, positions, use_cache=True)
        base_logits = base(ids, weights, mask, positions).logits
    real = mask.bool()  # padded positions' outputs are unused
    assert np.abs(outs[0][real.numpy()] - ref.logits[real].numpy()).max() < TOL
    assert (ref.logits - base_logits)[real].abs().max() > 100 * TOL  # the fine-tuning is visible in the logits
    cache = [t for kv in ref.past_key_values for t in kv]  # P = 0: the new keys/values are the whole cache
    assert all(np.abs(o - t.numpy()).max() < TOL for o, t in zip(outs[1:], cache))

    step_ids, step_weights, _, _ = soft_batch(model, [1, 1], k, seed=3)  # one soft decode step on ORT's new.* as past
    mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1)
    pos = mask.sum(-1, keepdim=True) - 1
    feeds = [step_ids.numpy(), step_weights.numpy(), mask.numpy(), pos.numpy()] + outs[1:]
    step = session.run(output_names(n_layers), dict(zip(input_names(n_layers), feeds)))
    with torch.no_grad():
        ref_step = model(step_ids, step_weights, mask, pos, past_key_values=ref.past_key_values, use_cache=True)
    assert np.abs(step[0] - ref_step.logits.numpy()).max() < TOL
    last = [t[:, :, -1:] for kv in ref_step.past_key_values for t in kv]  # the step's own column of the cache
    assert all(o.shape == t.shape and np.abs(o - t.numpy()).max() < TOL for o, t in zip(step[1:], last))


def test_later_checkpoints_of_an_architecture_skip_the_torch_exporter(base, template, tmp_path, monkeypatch):
    refuse_exporter(monkeypatch)
    model = fine_tuned(base, seed=4)
    assert check_with_onnxruntime(model, export(model, tmp_path / "model.onnx")) < TOL


def test_template_cached_on_disk_serves_a_fresh_process_without_the_exporter(base, template, tmp_path, monkeypatch):
    refuse_exporter(monkeypatch)
    monkeypatch.setattr(onnx_template, "_TEMPLATES", {})  # nothing in memory, as in a new worker process
    assert (onnx_template.cache_dir() / template.key / "graph.onnx").is_file()
    model = fine_tuned(base, seed=5)
    assert check_with_onnxruntime(model, export(model, tmp_path / "model.onnx")) < TOL


def test_changed_config_never_reuses_the_cached_graph(base, template, tmp_path, monkeypatch):
    # same parameter names and shapes; only the RoPE frequencies, constants of the graph, differ
    other = SoftTokenLM(dict(base.config_dict, rope_theta=500000.0))
    other.load_state_dict(fine_tuned(base, seed=6).state_dict())
    other.eval()
    reused = write_model(template, other, tmp_path / "reused.onnx")  # what reusing the template would write
    assert check_with_onnxruntime(other, reused) > 100 * TOL

    exported = []
    monkeypatch.setattr(export_onnx, "export_full", lambda model, path: exported.append(model.config_dict) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # it went to the exporter for a new graph
        export(other, tmp_path / "model.onnx")
    assert exported[0]["rope_theta"] == 500000.0
    assert template_key(other.config_dict) != template.key


def test_version_1_graph_is_never_reused(base, template, tmp_path, monkeypatch):
    """A template of graph version 1 (outputs present.*: the whole cache) is neither looked up under the version 2
    key, nor accepted from disk, nor verified."""
    key = template.key
    monkeypatch.setattr(export_onnx, "GRAPH_VERSION", 1)
    assert template_key(base.config_dict) != key  # the graph version is part of the key
    monkeypatch.undo()

    old = copy.deepcopy(template)  # version 1's output names on this graph
    renames = {o.name: o.name.replace("new.", "present.") for o in old.graph.graph.output if o.name != "logits"}
    for node in old.graph.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
    for o in old.graph.graph.output:
        o.name = renames.get(o.name, o.name)
    with pytest.raises(TemplateUnavailable, match="not those of graph version 2"):
        verify(old, base.config_dict)

    monkeypatch.setenv("SOFTGRPO_ONNX_CACHE", str(tmp_path))  # a disk entry under today's key, written by version 1
    onnx_template._save_to_disk(template, base.config_dict)
    meta_path = tmp_path / key / "template.json"
    meta = json.loads(meta_path.read_text())
    assert meta["graph_version"] == 2 and onnx_template._load_from_disk(key, base.config_dict) is not None
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "graph_version"}))
    assert onnx_template._load_from_disk(key, base.config_dict) is None and not (tmp_path / key).exists()


def test_check_compares_the_new_keys_and_values(base, template, tmp_path):
    """compare_with_onnxruntime compares the graph's new.* with PyTorch's cache: a graph whose new keys of layer 0
    are off (squared) fails on them (its prefill logits are still right; its decode step reads them as its past)."""
    model = fine_tuned(base, seed=9)
    path = export(model, tmp_path / "model.onnx")
    err = compare_with_onnxruntime(model, path)
    assert err["logits"] < TOL and err["new_kv"] < TOL
    graph = onnx.load(str(path))
    out = next(o for o in graph.graph.output if o.name == "new.0.key")
    for node in graph.graph.node:  # the graph's own key tensor, renamed; its output new.0.key is now its square
        node.input[:] = ["new.0.key.true" if n == "new.0.key" else n for n in node.input]
        node.output[:] = ["new.0.key.true" if n == "new.0.key" else n for n in node.output]
    graph.graph.node.append(onnx.helper.make_node("Mul", ["new.0.key.true", "new.0.key.true"], [out.name]))
    onnx.save_model(graph, str(tmp_path / "off.onnx"))
    err = compare_with_onnxruntime(model, tmp_path / "off.onnx")
    assert err["new_kv"] > 100 * TOL


def test_graph_with_a_weight_left_as_a_constant_fails_verification(base, template):
    broken = copy.deepcopy(template)
    name = next(n for n, (_, transposed) in broken.weights.items() if transposed)
    del broken.weights[name]  # as if the mapping had missed a folded, transposed weight: it keeps the stand-in values
    init = next(i for i in broken.graph.graph.initializer if i.name == name)
    init.raw_data = np.random.default_rng(0).normal(0, 0.02, tuple(init.dims)).astype(np.float32).tobytes()
    with pytest.raises(TemplateUnavailable, match="differs from PyTorch"):
        verify(broken, base.config_dict)


def test_architecture_without_a_verified_graph_falls_back_to_the_full_exporter_with_the_reason(base, tmp_path,
                                                                                              monkeypatch, caplog):
    def unavailable(config):
        raise TemplateUnavailable("parameter(s) ['x'] appear in no initializer")
    written = []
    monkeypatch.setattr(onnx_template, "get_template", unavailable)
    monkeypatch.setattr(export_onnx, "export_full", lambda model, path: written.append(path) or Path(path))
    with caplog.at_level(logging.WARNING, logger="softgrpo.export_onnx"):
        export(base, tmp_path / "model.onnx")
    assert written == [tmp_path / "model.onnx"]
    assert "running the full exporter: parameter(s) ['x'] appear in no initializer" in caplog.text


def test_export_leaves_the_model_dtype_and_the_global_rng_alone(base, template, tmp_path):
    model = fine_tuned(base, seed=7).to(torch.bfloat16)
    rng = torch.get_rng_state()
    path = export(model, tmp_path / "model.onnx")
    assert torch.equal(torch.get_rng_state(), rng)  # a resumed run draws what an uninterrupted one does
    assert next(model.parameters()).dtype == torch.bfloat16
    graph = onnx.load(str(path))
    assert all(i.data_type != onnx.TensorProto.BFLOAT16 for i in graph.graph.initializer)
    widened = model.float()  # the bf16 weights, widened exactly; RoPE frequencies come from config.json, unrounded
    widened.inv_freq = rope_inv_freq(widened.cfg)
    assert check_with_onnxruntime(widened, path) < TOL


def test_weights_over_the_size_limit_go_to_external_data_beside_model_onnx(base, template, tmp_path, monkeypatch):
    monkeypatch.setattr(export_onnx, "BIG_MODEL_BYTES", 1e5)  # the tiny model (3.4 MB) counts as big
    model = fine_tuned(base, seed=8)
    path = export(model, tmp_path / "model.onnx")
    data = tmp_path / "model.onnx.data"
    assert data.stat().st_size > 0.95 * 4 * model.num_parameters()  # all but the tensors under 1 KB
    assert check_with_onnxruntime(model, path) < TOL


def test_command_line_writes_and_checks_model_onnx(template, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(TINY / name, tmp_path / name)
    out = subprocess.run([sys.executable, "-m", "softgrpo.export_onnx", str(tmp_path), "--check"],
                         capture_output=True, text=True, check=True, env=None).stdout
    assert (tmp_path / "model.onnx").is_file() and "wrote" in out
    logits_line, kv_line = [line for line in out.splitlines() if "max |" in line][::-1]
    assert "logits" in logits_line and float(logits_line.rsplit("=", 1)[1]) < TOL
    assert "new keys/values" in kv_line and float(kv_line.rsplit("=", 1)[1]) < TOL
