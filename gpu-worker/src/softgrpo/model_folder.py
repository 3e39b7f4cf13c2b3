"""manifest.json of a model folder (docs/CONTRACTS.md "Model folder"): file hashes, writing and verifying.

    {format: "softgrpo-model/1", base, step, job_id?, think_start, think_end, eos, context_length,
     files: {name: sha256}, metrics: {...}, recommended_hyperparameters?: {...}}
"""

import json
from pathlib import Path

from softgrpo.hashing import sha256_file
from softgrpo.model import ModelFolderError

MANIFEST_FORMAT = "softgrpo-model/1"
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors", "model.onnx",
               "model.onnx.data", "model.int8.onnx", "model.int8.onnx.data", "generation_config.json")
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")


def file_hashes(folder: str | Path) -> dict[str, str]:
    """sha256 of the model files present in the folder (the ONNX exports, their external data and
    generation_config.json are optional, the others are required)."""
    folder = Path(folder)
    missing = [n for n in REQUIRED_FILES if not (folder / n).is_file()]
    if missing:
        raise ModelFolderError(f"model folder {str(folder)!r} lacks {', '.join(missing)}")
    return {n: sha256_file(folder / n) for n in MODEL_FILES if (folder / n).is_file()}


def write_manifest(
    folder: str | Path,
    base: str,
    step: int,
    context_length: int,
    metrics: dict | None = None,
    job_id: str | None = None,
    eos: str = "<|im_end|>",
    think_start: str = "<think>",
    think_end: str = "</think>",
    **extra,
) -> dict:
    """Hash the model files and write manifest.json last (so it describes the files as they are on disk)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "base": base,
        "step": step,
        **({"job_id": job_id} if job_id else {}),
        "think_start": think_start,
        "think_end": think_end,
        "eos": eos,
        "context_length": context_length,
        "files": file_hashes(folder),
        "metrics": metrics or {},
        **extra,
    }
    Path(folder, "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise ModelFolderError(f"model folder {str(folder)!r} has no manifest.json")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelFolderError(f"{path}: format {manifest.get('format')!r} is not {MANIFEST_FORMAT!r}")
    return manifest


def verify_manifest(folder: str | Path) -> list[str]:
    """Problems found (empty when every file listed in the manifest exists and matches its sha256)."""
    manifest = read_manifest(folder)
    problems = []
    for name, digest in manifest["files"].items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: sha256 differs from manifest.json")
    return problems
