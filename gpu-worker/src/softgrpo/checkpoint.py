"""Checkpoints: a servable model folder, kept apart from the resumable training state.

    <out>/checkpoints/step-000004/model/   config.json, tokenizer files, model.safetensors (LoRA merged),
                                           model.onnx (when exported), manifest.json (base, step, metrics, hashes)
    <out>/checkpoints/step-000004/state/   dcp/ (torch.distributed.checkpoint: the exact fp32 trainable parameters,
                                           LoRA unmerged, and the AdamW state, one shard file per rank that wrote it),
                                           rng.pt, state.json (step, data position, seed, world size, metrics)

The training state is written and read with torch.distributed.checkpoint, so a run saved by N ranks (FSDP2 shards)
resumes on M ranks, or in one process, and the reverse.

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
from safetensors.torch import load_file

from softgrpo.distributed import SINGLE, Ranks, barrier
from softgrpo.model_folder import write_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
STATE_FORMAT = "softgrpo-train-state/2"
STATE_FORMAT_V1 = "softgrpo-train-state/1"  # one process: trainable.safetensors + optimizer.pt (still resumable)
DCP_DIR = "dcp"


def _state_dict_api():
    """torch.distributed.checkpoint's state-dict helpers and the options of this module, imported when a training
    state is read or written (the import costs seconds, which serving and the CLI's checks need not pay).
    Trained parameters only (LoRA: the adapters; the frozen base comes from the base model folder); strict=False
    because the frozen ones are left out: the loaded keys are the saved ones (the DCP planner refuses missing keys)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    return get_state_dict, set_state_dict, StateDictOptions(ignore_frozen_params=True, strict=False)


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


def save_training_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                        ranks: Ranks = SINGLE) -> Path:
    """Write the resumable state: the trained parameters and the optimizer through torch.distributed.checkpoint
    (state/dcp/, each rank writing its own shards), rng.pt and state.json (JSON-able `state`). Collective when
    distributed: every rank calls it with the same folder (one filesystem: the worker's machine, or shared storage
    across nodes)."""
    import torch.distributed.checkpoint as dcp

    tmp = folder.with_name(folder.name + ".tmp")
    if ranks.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier(ranks)
    get_state_dict, _, options = _state_dict_api()
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp / DCP_DIR)
    if ranks.is_main:
        torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"format": STATE_FORMAT, "world_size": ranks.world, **state},
                                                   indent=2) + "\n")
        _replace_dir(tmp, folder)
    barrier(ranks)
    return folder


def read_state_json(folder: str | Path) -> dict:
    """state.json of a training state folder (either format), checked."""
    state_path = Path(folder) / "state.json"
    if not state_path.is_file():
        raise ValueError(f"{folder} is not a training state folder (no state.json)")
    state = json.loads(state_path.read_text())
    if state.get("format") not in (STATE_FORMAT, STATE_FORMAT_V1):
        raise ValueError(f"{state_path}: format {state.get('format')!r} is not {STATE_FORMAT!r}")
    return state


def load_training_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        ranks: Ranks = SINGLE) -> tuple[dict, dict]:
    """Load a state written by save_training_state into `model` (plain or FSDP2-sharded) and `optimizer`, whatever
    the world size that wrote it (torch.distributed.checkpoint reshards on load). Returns (rng states, state dict).
    A state of format 1 (one process: trainable.safetensors + optimizer.pt) loads into a plain model."""
    folder = Path(folder)
    state = read_state_json(folder)
    if state["format"] == STATE_FORMAT_V1:
        if ranks.distributed:
            raise ValueError(f"{folder}: a format-1 training state resumes on one device only")
        trainable = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in load_file(folder / "trainable.safetensors").items():
                trainable[name].copy_(tensor)
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    else:
        import torch.distributed.checkpoint as dcp

        get_state_dict, set_state_dict, options = _state_dict_api()
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        loaded = {"model": model_state, "optimizer": optimizer_state}
        dcp.load(loaded, checkpoint_id=folder / DCP_DIR)
        set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optimizer"],
                       options=options)
    rng = torch.load(folder / "rng.pt", weights_only=True)
    return rng, state


def state_files(folder: str | Path) -> list[str]:
    """Every file of a training state folder, as paths relative to it (`state.json`, `dcp/.metadata`, ...)."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def blob_name(relative: str) -> str:
    """The flat name a state file is uploaded under (the API takes plain names that start with a letter or digit):
    `dcp/.metadata` -> `dcp.metadata`, `dcp/__0_0.distcp` -> `dcp__0_0.distcp`; top-level names unchanged."""
    return relative.replace("/", "")
