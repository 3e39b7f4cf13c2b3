"""Command line: train a model folder with SofT-GRPO (or discrete GRPO) from a JSONL file, outside the API.

    gpu-worker/.venv/bin/python -m softgrpo.cli train --model models/tiny --train models/tiny/data/train.jsonl \\
        [--validation models/tiny/data/validation.jsonl] [--config cfg.json] --out runs/tiny [--resume] \
        [--device cpu|cuda] [--backend torch|triton] [--rollout-engine plain|static]

cfg.json (every part optional): {"method": "soft_grpo" | "grpo", "seed": 0, "grader": {"type": "math"},
"hyperparameters": {field: value | "auto", ...}} (fields in docs/CONTRACTS.md). Everything is validated before
training starts: the model folder, every dataset line, the hyperparameters and the grader; a problem ends the
command with exit code 2 and a message that names it. Events (start, metrics, eval, checkpoint, done) are printed
to stdout as JSON lines. --backend / --rollout-engine choose the kernels and the rollout loop (softgrpo.train's
docstring); they default to triton + static on CUDA and torch + plain on CPU, and the start event records them.

On more than one device, the same command under torchrun (every rank runs it; rank 0 prints the events; --out on
storage every rank sees, one node or several):

    torchrun --nproc_per_node=8 -m softgrpo.cli train --model ... --train ... --out /shared/runs/demo --device cuda
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from softgrpo.config import (BACKENDS, METHODS, ROLLOUT_ENGINES, Hyperparameters, check_engine_options,
                             resolve_hyperparameters, rollout_config)
from softgrpo.data import load_jsonl
from softgrpo.distributed import destroy, ranks_from_env
from softgrpo.model import ModelConfig, ModelFolderError
from softgrpo.rewards import make_grader
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.train import RunConfig, train

CONFIG_KEYS = ("method", "seed", "grader", "hyperparameters")


class UsageError(ValueError):
    """Bad input found before training; the message names the problem."""


@dataclass
class RunInputs:
    model_folder: Path
    train_examples: list[dict]
    validation_examples: list[dict] | None
    method: str
    seed: int
    hp: Hyperparameters
    grader: Callable[[str, dict], float]


def check_model_folder(folder: Path) -> dict:
    """Validate config.json, the tokenizer and the weights' presence without loading them; returns the manifest."""
    if not folder.is_dir():
        raise UsageError(f"model folder {str(folder)!r} does not exist")
    try:
        ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
        ChatTokenizer.from_pretrained(folder)
    except FileNotFoundError:
        raise UsageError(f"model folder {str(folder)!r} has no config.json") from None
    except (ModelFolderError, json.JSONDecodeError) as err:
        raise UsageError(f"model folder {str(folder)!r}: {err}") from None
    if not list(folder.glob("*.safetensors")):
        raise UsageError(f"model folder {str(folder)!r} has no *.safetensors weights")
    manifest_path = folder / "manifest.json"
    return json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}


def prepare_run(model_folder: str | Path, train_path: str | Path, validation_path: str | Path | None,
                config: dict, method: str | None = None) -> RunInputs:
    """Validate every input of a training run (raises UsageError / ValueError naming the problem)."""
    if not isinstance(config, dict):
        raise UsageError("config must be a JSON object")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"config.{unknown[0]} is not a known key (known: {', '.join(CONFIG_KEYS)})")
    model_folder = Path(model_folder)
    manifest = check_model_folder(model_folder)
    train_examples = load_jsonl(train_path)
    validation_examples = load_jsonl(validation_path) if validation_path else None
    method = method or config.get("method", "soft_grpo")
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**53:
        raise UsageError(f"config.seed must be an integer in [0, 2^53), got {seed!r}")
    context = manifest.get("context_length")
    hp = resolve_hyperparameters(config.get("hyperparameters"), method, len(train_examples), manifest, context)
    grader = make_grader(config.get("grader"))
    return RunInputs(model_folder, train_examples, validation_examples, method, seed, hp, grader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m softgrpo.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train a model folder from a JSONL file")
    run.add_argument("--model", required=True, help="base model folder (config.json, tokenizer, safetensors)")
    run.add_argument("--train", required=True, help="training JSONL")
    run.add_argument("--validation", help="validation JSONL (evaluated every eval_interval steps)")
    run.add_argument("--config", help="JSON file: method, seed, grader, hyperparameters")
    run.add_argument("--method", choices=METHODS, help="overrides the config's method")
    run.add_argument("--out", required=True, help="output folder (checkpoints/step-N/{model,state})")
    run.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    run.add_argument("--onnx", action="store_true", help="export model.onnx into every checkpoint")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    run.add_argument("--threads", type=int, help="torch CPU threads (small models run fastest on 1)")
    run.add_argument("--backend", choices=BACKENDS,
                     help="torch references or the Triton kernels (default: triton on CUDA, torch on CPU)")
    run.add_argument("--rollout-engine", choices=ROLLOUT_ENGINES,
                     help="plain = softgrpo.rollout; static = softgrpo.gpu_engine, static KV cache and CUDA graphs "
                          "(default: static on CUDA, plain on CPU)")
    args = parser.parse_args(argv)
    on_cuda = str(args.device).startswith("cuda")
    backend = args.backend or ("triton" if on_cuda else "torch")
    rollout_engine = args.rollout_engine or ("static" if on_cuda else "plain")

    try:
        config = {}
        if args.config:
            try:
                config = json.loads(Path(args.config).read_text())
            except FileNotFoundError:
                raise UsageError(f"config file {args.config!r} not found") from None
            except json.JSONDecodeError as err:
                raise UsageError(f"config file {args.config!r} is not valid JSON: {err}") from None
        inputs = prepare_run(args.model, args.train, args.validation, config, args.method)
        check_engine_options(backend, rollout_engine, args.device, rollout_config(inputs.hp, inputs.method))
    except ValueError as err:  # UsageError, DatasetError, hyperparameter and grader errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    events = train(inputs.model_folder, inputs.train_examples, inputs.hp, inputs.method, inputs.grader, args.out,
                   validation_examples=inputs.validation_examples, seed=inputs.seed, resume=args.resume,
                   run=RunConfig(device=args.device, backend=backend, rollout_engine=rollout_engine,
                                 export_onnx=args.onnx))
    main_rank = ranks_from_env().is_main
    for event in events:
        if main_rank:
            print(json.dumps(event), flush=True)
    destroy()  # under torchrun: leave the process group before exiting
    return 0


if __name__ == "__main__":
    sys.exit(main())
