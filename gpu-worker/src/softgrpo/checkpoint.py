"""Checkpoints: a servable model folder, kept apart from the resumable training state.

    <out>/checkpoints/step-000004/model/   config.json, tokenizer files, model.safetensors (LoRA merged),
                                           model.onnx (when exported), manifest.json (base, step, metrics, hashes)
    <out>/checkpoints/step-000004/state/   trainable.safetensors (exact fp32 trainable parameters, LoRA unmerged),
                                           optimizer.pt, rng.pt, state.json (step, data position, seed, metrics)

Both folders are written under a temporary name and renamed into place, so a crash never leaves a half-written
checkpoint that looks complete. The model folder never holds optimizer state; the state never needs the model
folder (resuming rebuilds the model from the base folder, then loads trainable.safetensors).
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from softgrpo.model_folder import write_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
STATE_FORMAT = "softgrpo-train-state/1"


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under out_dir (one with a state/state.json), or None."""
    root = Path(out_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-*") if (p / "state" / "state.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def merged_model(model, peft_model=None):
    """The plain SoftTokenLM to serve: the model itself, or a copy with the LoRA deltas merged in."""
    if peft_model is None:
        return model
    return copy.deepcopy(peft_model).merge_and_unload()


def save_model_folder(folder: Path, model, base_folder: Path, manifest: dict, export_onnx: bool) -> Path:
    """Write a servable model folder. model: SoftTokenLM (merged); manifest: base, step, context_length, metrics,
    job_id?, eos, think_start, think_end, plus extra keys (e.g. recommended_hyperparameters)."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    for name in TOKENIZER_FILES:
        if (base_folder / name).is_file():
            shutil.copyfile(base_folder / name, tmp / name)
    if export_onnx:
        from softgrpo.export_onnx import export

        export(model, tmp / "model.onnx")
    write_manifest(tmp, **manifest)
    _replace_dir(tmp, folder)
    return folder


def save_training_state(folder: Path, trainable: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                        state: dict) -> Path:
    """Write the resumable state. trainable: {name: tensor} of the trained parameters; state: JSON-able dict."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, tmp / "trainable.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"format": STATE_FORMAT, **state}, indent=2) + "\n")
    _replace_dir(tmp, folder)
    return folder


def load_training_state(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict, dict]:
    """Read (trainable tensors, optimizer state dict, rng states, state dict) written by save_training_state."""
    folder = Path(folder)
    state_path = folder / "state.json"
    if not state_path.is_file():
        raise ValueError(f"{folder} is not a training state folder (no state.json)")
    state = json.loads(state_path.read_text())
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"{state_path}: format {state.get('format')!r} is not {STATE_FORMAT!r}")
    trainable = load_file(folder / "trainable.safetensors")
    optimizer = torch.load(folder / "optimizer.pt", weights_only=True)
    rng = torch.load(folder / "rng.pt", weights_only=True)
    return trainable, optimizer, rng, state
