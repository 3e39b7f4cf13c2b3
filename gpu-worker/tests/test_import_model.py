"""Model import (softgrpo.import_model) on random-weight folders saved by transformers at the real Qwen2 and Llama
architectures, shrunk (tests/hf_fixture.py): what it accepts, what it writes, and the problems it names."""

import json
import shutil

import onnx
import pytest
import torch

from softgrpo import export_onnx
from softgrpo import import_model as im
from softgrpo.model import SoftTokenLM
from softgrpo.model_folder import verify_manifest
from softgrpo.tokenizer import ChatTokenizer

transformers = pytest.importorskip("transformers")
hf_fixture = pytest.importorskip("hf_fixture")
torch.set_num_threads(2)

VARIANTS = {
    "qwen2_tied_sharded_bf16": dict(arch="qwen2", tied=True, shard_kb=60, dtype="bfloat16"),
    "qwen2_untied": dict(arch="qwen2", tied=False),
    "llama_untied_sharded": dict(arch="llama", tied=False, shard_kb=100),
    "llama_tied_no_think_tokens": dict(arch="llama", tied=True, think_tokens=False),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {name: hf_fixture.build(root / name, **kw) for name, kw in VARIANTS.items()}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_inspect_accepts_each_architecture_and_merged_weights_match_transformers(folders, name, tmp_path):
    src = folders[name]
    think = name != "llama_tied_no_think_tokens"
    info = im.inspect(src, add_think_tokens=not think)
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    assert info["n_parameters"] == sum(p.numel() for p in ref.parameters())
    assert info["cfg"].tie_word_embeddings == VARIANTS[name].get("tied", True)
    assert len(info["files"]) > 1 if VARIANTS[name].get("shard_kb") else len(info["files"]) == 1
    # the merged single model.safetensors loads into our model and equals transformers on the source folder
    shutil.copyfile(src / "config.json", tmp_path / "config.json")
    im.merge_weights(info["files"], tmp_path, info["cfg"].tie_word_embeddings)
    ours = SoftTokenLM.from_pretrained(tmp_path)
    tokens = torch.randint(0, info["cfg"].vocab_size, (2, 7))
    with torch.no_grad():
        expected = ref(tokens).logits
        got = ours(tokens).logits
    tol = 1e-2 if VARIANTS[name].get("dtype") == "bfloat16" else 1e-5  # bf16 weights, fp32 compute on both sides
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)


def test_import_writes_a_servable_folder_with_external_data_int8_and_manifest(folders, tmp_path):
    out = tmp_path / "qwen-import"
    manifest = im.import_model(folders["qwen2_tied_sharded_bf16"], out, int8=True, check=True, log=lambda m: None)
    assert manifest["id"] == manifest["base"] == "qwen-import"
    assert (out / "model.onnx.data").stat().st_size > 0  # external data, always, for imports
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors", "model.onnx",
                 "model.onnx.data", "model.int8.onnx", "generation_config.json"):
        assert name in manifest["files"], name
    assert verify_manifest(out) == []
    assert manifest["context_length"] == 512 and manifest["eos"] == "<|im_end|>"
    assert (manifest["think_start"], manifest["think_end"]) == ("<think>", "</think>")
    assert manifest["size_tier"] == "small" and manifest["recommended_hyperparameters"]["lora_rank"] == 0
    assert manifest["onnx"] == {"fp32": "model.onnx", "int8": "model.int8.onnx", "serving": "int8"}
    checks = manifest["import_checks"]
    assert checks["onnx_vs_pytorch_max_abs_logit_diff"] < 1e-4 and checks["onnx_vs_pytorch_max_abs_new_kv_diff"] < 1e-4
    assert 0 < checks["int8_vs_pytorch_max_abs_logit_diff"] < 0.1  # quantized: close, and not the same graph
    assert 0 < checks["int8_vs_pytorch_max_abs_new_kv_diff"] < 0.1
    n_layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    for graph in ("model.onnx", "model.int8.onnx"):  # both graph version 2: new keys/values out, no cache concat
        outputs = [o.name for o in onnx.load(str(out / graph), load_external_data=False).graph.output]
        assert outputs == export_onnx.output_names(n_layers), graph
        shapes = export_onnx.concat_input_shapes(out / graph, B=2, T=3, P=11)
        assert not [s for _, inputs in shapes for s in inputs if len(s) == 4 and s[2] == 11], (graph, shapes)
    # the chat template of chat_template.jinja is folded into tokenizer_config.json, which both engines read
    tok = ChatTokenizer.from_pretrained(out)
    assert "You are Qwen" in tok.render_chat([{"role": "user", "content": "1+1?"}])
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"].startswith("{%- if tools %}")


def test_add_think_tokens_uses_spare_embedding_rows(folders, tmp_path):
    src = folders["llama_tied_no_think_tokens"]
    with pytest.raises(im.ImportProblems, match=r"tokenizer.json: no single token '<think>' / '</think>'.*--add-think-tokens"):
        im.inspect(src)
    info = im.inspect(src, add_think_tokens=True)
    im.write_tokenizer(info, tmp_path)
    tok = ChatTokenizer.from_pretrained(tmp_path)
    assert info["cfg"].vocab_size > tok.think_end_id > tok.think_start_id >= 0
    assert tok.encode("<think>\n") [0] == tok.think_start_id


def test_custom_thinking_markers_from_options_reach_the_tokenizer(folders, tmp_path):
    src = folders["llama_tied_no_think_tokens"]
    info = im.inspect(src, think_start="<reasoning>", think_end="</reasoning>", add_think_tokens=True)
    assert info["markers"] == ("<reasoning>", "</reasoning>") and info["add_tokens"] == ["<reasoning>", "</reasoning>"]
    im.write_tokenizer(info, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["think_start"], config["think_end"]) == ("<reasoning>", "</reasoning>")
    tok = ChatTokenizer.from_pretrained(tmp_path)
    assert tok.think_start_id == tok.token_id("<reasoning>") and tok.think_end_id == tok.token_id("</reasoning>")
    assert tok.render_chat([{"role": "user", "content": "2+2?"}]).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n<reasoning>\n")


def test_markers_the_chat_template_writes_are_used(folders, tmp_path):
    src = _broken(folders["llama_tied_no_think_tokens"], tmp_path, lambda d: (d / "chat_template.jinja").write_text(
        (d / "chat_template.jinja").read_text().replace("<|end_header_id|>\n\n' }}", "<|end_header_id|>\n\n<thinking>\n' }}")))
    assert im.inspect(src, add_think_tokens=True)["markers"] == ("<thinking>", "</thinking>")


def _broken(src, tmp_path, edit):
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data))


BAD = {
    "unsupported_architecture": (lambda d: _edit_json(d / "config.json", model_type="mistral", architectures=["MistralForCausalLM"]),
                                 r"config.json: model_type 'mistral' \(MistralForCausalLM\) is not supported; supported: qwen2"),
    "missing_shard": (lambda d: (d / "model-00002-of-00004.safetensors").unlink(),
                      r"model.safetensors.index.json names shard\(s\) that are missing: model-00002-of-00004.safetensors"),
    "pytorch_bin_only": (lambda d: [p.rename(d / "pytorch_model.bin") if i == 0 else p.unlink()
                                    for i, p in enumerate(sorted(d.glob("model*.safetensors*")))],
                         r"no \*.safetensors weights \(found pytorch_model.bin: convert them to safetensors"),
    "quantized": (lambda d: _edit_json(d / "config.json", quantization_config={"quant_method": "awq"}),
                  r"config.json: quantization_config \(awq\) is not supported"),
    "no_chat_template": (lambda d: (d / "chat_template.jinja").unlink(),
                         r"tokenizer_config.json: no chat_template \(nor chat_template.jinja\)"),
    "no_tokenizer_json": (lambda d: (d / "tokenizer.json").unlink(), r"tokenizer.json: missing"),
    "shape_mismatch": (lambda d: _edit_json(d / "config.json", intermediate_size=96),
                       r"tensor shape\(s\) differ from config.json: model.layers.0.mlp.down_proj.weight \[64, 128\]"),
    "untied_claim_without_head": (lambda d: _edit_json(d / "config.json", tie_word_embeddings=False),
                                  r"weights lack 1 tensor\(s\) config.json needs: lm_head.weight \(lm_head.weight: set tie_word_embeddings=true"),
    "sliding_window": (lambda d: _edit_json(d / "config.json", use_sliding_window=True),
                       r"use_sliding_window=true is not supported"),
    "bad_json": (lambda d: (d / "config.json").write_text("{nope"), r"config.json: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_folder_gets_an_error_naming_the_file(folders, tmp_path, case):
    edit, message = BAD[case]
    with pytest.raises(im.ImportProblems, match=message):
        im.inspect(_broken(folders["qwen2_tied_sharded_bf16"], tmp_path, edit))


def test_cli_exits_2_and_lists_every_problem(folders, tmp_path, capsys):
    src = _broken(folders["qwen2_tied_sharded_bf16"], tmp_path, lambda d: (
        _edit_json(d / "config.json", quantization_config={"quant_method": "gptq"}), (d / "tokenizer.json").unlink()))
    assert im.main([str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "quantization_config (gptq)" in err and "tokenizer.json: missing" in err
    assert not (tmp_path / "out").exists()
