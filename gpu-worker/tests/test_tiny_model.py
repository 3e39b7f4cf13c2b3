"""The committed tiny model folder (models/tiny): loads, matches its manifest, tokenizes, and its data is valid."""

import json
from pathlib import Path

import pytest
import torch

from softgrpo.model import SoftTokenLM
from softgrpo.model_folder import MANIFEST_FORMAT, read_manifest, verify_manifest
from softgrpo.tokenizer import ChatTokenizer

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def manifest():
    return read_manifest(TINY)


def test_manifest_hashes_match_the_files(manifest):
    assert manifest["format"] == MANIFEST_FORMAT
    assert set(manifest["files"]) == {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors",
                                      "model.onnx"}
    assert verify_manifest(TINY) == []


def test_manifest_fields_follow_the_contract(manifest):
    assert manifest["base"] == "tiny-arith" and manifest["step"] == 0
    assert (manifest["think_start"], manifest["think_end"], manifest["eos"]) == ("<think>", "</think>", "<|im_end|>")
    m = manifest["metrics"]
    assert m["eval_split"] == "test" and m["eval_problems"] > 0
    assert 0.0 < m["pass@1_temperature_1"] < 1.0 and 0.0 <= m["greedy_accuracy"] <= 1.0
    hp = manifest["recommended_hyperparameters"]
    assert {"learning_rate", "batch_size", "group_size", "max_response_tokens"} <= set(hp)


def test_model_loads_and_predicts_the_tokenizer_vocabulary(manifest):
    model = SoftTokenLM.from_pretrained(TINY)
    tok = ChatTokenizer.from_pretrained(TINY)
    assert model.cfg.model_type == "qwen2" and model.cfg.vocab_size == tok.vocab_size
    assert model.cfg.max_position_embeddings == manifest["context_length"]
    ids = torch.tensor([tok.encode_chat([{"role": "user", "content": "Tom has 3 pens. How many pens does Tom have now?"}])])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], tok.vocab_size) and torch.isfinite(logits).all()


def test_tokenizer_round_trips_training_text_and_has_the_think_tokens():
    tok = ChatTokenizer.from_pretrained(TINY)
    row = json.loads((TINY / "data" / "test.jsonl").open().readline())
    text = tok.render_chat([{"role": "user", "content": row["prompt"]}]) + row["target"] + "<|im_end|>"
    assert tok.decode(tok.encode(text)) == text
    assert tok.render_chat([{"role": "user", "content": "hi"}]).endswith("<|im_start|>assistant\n<think>\n")
    assert tok.decode([tok.think_start_id, tok.think_end_id, tok.eos_id]) == "<think></think><|im_end|>"


def test_bundled_data_splits_are_valid_disjoint_and_graded_by_their_targets(manifest):
    prompts = {}
    for split, info in manifest["data"].items():
        rows = [json.loads(line) for line in (TINY / info["path"]).open()]
        assert len(rows) == info["lines"] > 0
        for n, row in enumerate(rows, 1):
            assert isinstance(row["prompt"], str) and row["prompt"], f"{split} line {n}"
            assert row["answer"].lstrip("-").isdigit(), f"{split} line {n}"
            assert row["target"].endswith("</think>\n\\boxed{" + row["answer"] + "}"), f"{split} line {n}"
        prompts[split] = {r["prompt"] for r in rows}
    assert not prompts["test"] & prompts["train"] and not prompts["validation"] & prompts["train"]
    assert not prompts["test"] & prompts["validation"]
