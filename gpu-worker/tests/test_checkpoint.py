"""Checkpoints: a servable model folder apart from the training state; resuming reproduces the run exactly."""
import json

import onnx
import pytest
import torch
from safetensors.torch import load_file

from softgrpo import export_onnx
from softgrpo.checkpoint import blob_name, latest_checkpoint, read_state_json, save_model_folder, state_files
from softgrpo.model import SoftTokenLM
from softgrpo.model_folder import verify_manifest
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.train import train
from test_train import EXAMPLES, digit_grader, make_model_folder, small_hp

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores


def test_resuming_after_two_steps_reproduces_four_straight_steps(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    hp = small_hp(n_steps=4, checkpoint_interval=2)
    straight = [e for e in train(folder, EXAMPLES, hp, "soft_grpo", digit_grader, tmp_path / "a")]

    interrupted = train(folder, EXAMPLES, hp, "soft_grpo", digit_grader, tmp_path / "b")
    for event in interrupted:  # a worker killed right after the step-2 checkpoint
        if event["type"] == "checkpoint":
            break
    interrupted.close()
    assert latest_checkpoint(tmp_path / "b").name == "step-000002"
    resumed = list(train(folder, EXAMPLES, hp, "soft_grpo", digit_grader, tmp_path / "b", resume=True))
    assert resumed[0]["resumed_from_step"] == 2
    assert [e["step"] for e in resumed if e["type"] == "metrics"] == [3, 4]

    weights_a = load_file(tmp_path / "a/checkpoints/step-000004/model/model.safetensors")
    weights_b = load_file(tmp_path / "b/checkpoints/step-000004/model/model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    rewards = lambda events: [e["reward_mean"] for e in events if e["type"] == "metrics"]  # noqa: E731
    assert rewards(straight)[2:] == rewards(resumed)
    timing = {"tokens_per_s", "rollout_seconds", "step_seconds"}
    untimed = lambda history: [{k: v for k, v in m.items() if k not in timing} for m in history]  # noqa: E731
    assert untimed(straight[-1]["history"]) == untimed(resumed[-1]["history"])


def test_model_folder_is_servable_and_state_is_separate(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    list(train(folder, EXAMPLES, small_hp(n_steps=1), "soft_grpo", digit_grader, tmp_path / "out", job_id="ftjob-1"))
    model_dir = tmp_path / "out/checkpoints/step-000001/model"
    state_dir = tmp_path / "out/checkpoints/step-000001/state"
    assert verify_manifest(model_dir) == []
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["step"] == 1 and manifest["base"] == "toy" and manifest["job_id"] == "ftjob-1"
    assert manifest["eos"] == "<|im_end|>" and "reward_mean" in manifest["metrics"]
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= set(manifest["files"])
    SoftTokenLM.from_pretrained(model_dir)
    ChatTokenizer.from_pretrained(model_dir)
    assert not any(p.name.startswith("optimizer") for p in model_dir.iterdir())
    state = read_state_json(state_dir)
    assert state["step"] == 1 and state["data_position"] == 2 and state["world_size"] == 1
    assert {"state.json", "rng.pt", "dcp/.metadata"} <= set(state_files(state_dir))
    assert all(blob_name(name)[0].isalnum() and "/" not in blob_name(name) for name in state_files(state_dir))
    assert not list(tmp_path.glob("out/checkpoints/**/*.tmp"))


def test_resume_with_other_hyperparameters_is_refused(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    list(train(folder, EXAMPLES, small_hp(n_steps=1), "soft_grpo", digit_grader, tmp_path / "out"))
    with pytest.raises(ValueError, match="differ"):
        list(train(folder, EXAMPLES, small_hp(n_steps=1, learning_rate=0.5), "soft_grpo", digit_grader,
                   tmp_path / "out", resume=True))


def test_every_checkpoint_onnx_holds_its_own_weights_and_the_graph_is_exported_once(tmp_path, monkeypatch):
    base = make_model_folder(tmp_path / "base")
    exports, full_export = [], export_onnx.export_full

    def counted_export(model, path):
        exports.append(path)
        return full_export(model, path)
    monkeypatch.setattr(export_onnx, "export_full", counted_export)
    model = SoftTokenLM.from_pretrained(base)
    for step in (1, 2):
        with torch.no_grad():  # a training step's worth of change in every parameter
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        folder = save_model_folder(tmp_path / f"step-{step}", model, base, {"base": "toy", "step": step,
                                                                           "context_length": 512}, export_onnx=True)
        assert "model.onnx" in json.loads((folder / "manifest.json").read_text())["files"]
        assert verify_manifest(folder) == []
        saved = SoftTokenLM.from_pretrained(folder)
        graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
        assert [o.name for o in graph.output] == export_onnx.output_names(saved.cfg.num_hidden_layers)  # version 2
        assert export_onnx.check_with_onnxruntime(saved, folder / "model.onnx") < 1e-4  # logits and new keys/values
    assert len(exports) <= 1  # once for the stand-in (none if an earlier test built this config), never per checkpoint
