"""The shared contract files (contract/ at the repository root): hyperparameter, dataset and resource rules as data.

The API (src/contract/) and this package read the same JSON, so a rule lives once; softgrpo.config, softgrpo.data and
softgrpo.distributed (resources.devices) apply them. The files are found at $SOFTGRPO_CONTRACT_DIR (the worker image
sets it: gpu-worker/Dockerfile copies the folder in) or else at the repository root, three levels above this package
(a source checkout).

Expressions of contract/hyperparameters.json ("auto" rules, rule bounds) and contract/resources.json (rule bounds),
evaluated exactly as src/contract/expression.ts evaluates them:
    number | string | bool | None         itself; a list is a literal list of strings
    {"var": name}                          a resolved field or a job input (None when unknown)
    {"min" | "max": [a, b, ...]}           None operands are ignored (None when none is left)
    {"mul" | "sub": [a, b]}                None when an operand is None
    {"ceil_div" | "floor_div": [a, b]}     integer division rounded up / down; None when an operand is None
    {"mod": [a, b]}                        a - b * floor(a / b) (the remainder, b's sign); None when an operand is None
    {"by_method": {method: expression}}    the expression of the job's method (None when it has none)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping


def contract_dir() -> Path:
    configured = os.environ.get("SOFTGRPO_CONTRACT_DIR")
    folder = Path(configured) if configured else Path(__file__).resolve().parents[3] / "contract"
    if not (folder / "hyperparameters.json").is_file():
        raise RuntimeError(f"the shared contract is not at {folder} (set SOFTGRPO_CONTRACT_DIR to the repository's "
                           "contract/ folder)")
    return folder


def load(name: str) -> dict:
    return json.loads((contract_dir() / name).read_text(encoding="utf-8"))


HYPERPARAMETERS = load("hyperparameters.json")
DATASET = load("dataset.json")
RESOURCES = load("resources.json")


def _numbers(args: list, env: Mapping[str, Any]) -> list:
    out = [evaluate(a, env) for a in args]
    for a, v in zip(args, out):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"contract expression: {a!r} is not a number")
    return out


def evaluate(expr: Any, env: Mapping[str, Any]) -> Any:
    if not isinstance(expr, dict):
        return expr
    (name, args), = expr.items()
    if name == "var":
        return env.get(args)
    if name == "by_method":
        branch = args.get(str(env.get("method")), _MISSING)
        return None if branch is _MISSING else evaluate(branch, env)
    if name in ("min", "max"):
        xs = [x for x in _numbers(args, env) if x is not None]
        return (min if name == "min" else max)(xs) if xs else None
    if name in ("mul", "sub", "ceil_div", "floor_div", "mod"):
        a, b = _numbers(args, env)
        if a is None or b is None:
            return None
        if name == "mul":
            return a * b
        if name == "sub":
            return a - b
        if name == "mod":
            return a - b * math.floor(a / b)
        return math.ceil(a / b) if name == "ceil_div" else math.floor(a / b)
    raise ValueError(f"contract expression: unknown operator {name!r}")


def variables(expr: Any) -> list[str]:
    """The names an expression reads with {"var"}."""
    if not isinstance(expr, dict):
        return []
    (name, args), = expr.items()
    if name == "var":
        return [args]
    parts = list(args.values()) if name == "by_method" else args
    return [v for part in parts for v in variables(part)]


_MISSING = object()
