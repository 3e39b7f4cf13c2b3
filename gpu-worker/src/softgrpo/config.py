"""Fine-tune hyperparameters: validation and "auto" resolution (docs/CONTRACTS.md "Fine-tune hyperparameters").

Every field accepts "auto" (or may be left out). "auto" resolves, in order, to the base model's manifest.json
`recommended_hyperparameters[field]`, else the SofT-GRPO reference default (some defaults depend on other fields,
e.g. n_steps = one pass over the training prompts). Errors are ValueError messages that name the field.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

from softgrpo.loss import LOSSES
from softgrpo.rollout import RolloutConfig
from softgrpo.sampler import SoftStepConfig

METHODS = ("soft_grpo", "grpo")
BACKENDS = ("torch", "triton")  # kernels: torch references or the Triton kernels (softgrpo.kernels)
ROLLOUT_ENGINES = ("plain", "static")  # softgrpo.rollout (reference) or softgrpo.gpu_engine (static KV cache)
EMBEDDING_NOISE_DEFAULT = 0.3  # soft_gaussian sigma / RMS of the embedding rows (docs/results.md)
TRITON_MAX_TOPK = 64  # kernels.soft_token_step.MAX_TOPK: the Triton sampler filters within the top_k set


@dataclass(frozen=True)
class Hyperparameters:
    n_steps: int
    batch_size: int
    group_size: int
    mini_batch_size: int
    ppo_epochs: int
    learning_rate: float
    weight_decay: float
    grad_clip: float
    clip_eps: float
    dual_clip: float
    kl_beta: float
    entropy_coef: float
    loss: str
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    max_topk: int
    gumbel_tau: float
    noise_scale: float
    embedding_noise: float
    answer_temperature: float
    answer_top_k: int
    answer_top_p: float
    max_response_tokens: int
    max_thinking_tokens: int
    cold_stop_entropy: float | None
    cold_stop_steps: int
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    eval_interval: int
    checkpoint_interval: int
    eval_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


FIELD_NAMES = tuple(f.name for f in fields(Hyperparameters))


# ---- per-field rules: (kind, predicate, description) ---------------------------------------------------------------
def _int(check: Callable[[int], bool], text: str):
    return ("int", check, f"an integer {text}")


def _float(check: Callable[[float], bool], text: str):
    return ("float", check, f"a number {text}")


RULES: dict[str, tuple] = {
    "n_steps": _int(lambda v: v >= 1, ">= 1"),
    "batch_size": _int(lambda v: v >= 1, ">= 1"),
    "group_size": _int(lambda v: 2 <= v <= 64, "in 2..64"),
    "mini_batch_size": _int(lambda v: v >= 1, ">= 1"),
    "ppo_epochs": _int(lambda v: 1 <= v <= 8, "in 1..8"),
    "learning_rate": _float(lambda v: v > 0, "> 0"),
    "weight_decay": _float(lambda v: v >= 0, ">= 0"),
    "grad_clip": _float(lambda v: v > 0, "> 0"),
    "clip_eps": _float(lambda v: 0 < v < 1, "in (0, 1)"),
    "dual_clip": _float(lambda v: v > 1, "> 1"),
    "kl_beta": _float(lambda v: v >= 0, ">= 0"),
    "entropy_coef": _float(lambda v: v >= 0, ">= 0"),
    "loss": ("choice", lambda v: v in LOSSES, f"one of {', '.join(LOSSES)}"),
    "temperature": _float(lambda v: v > 0, "> 0"),
    "top_k": _int(lambda v: v >= 0, ">= 0 (0 = off)"),
    "top_p": _float(lambda v: 0 < v <= 1, "in (0, 1]"),
    "min_p": _float(lambda v: 0 <= v < 1, "in [0, 1)"),
    "max_topk": _int(lambda v: 1 <= v <= 64, "in 1..64"),
    "gumbel_tau": _float(lambda v: v > 0, "> 0"),
    "noise_scale": _float(lambda v: v >= 0, ">= 0"),
    "embedding_noise": _float(lambda v: v >= 0, ">= 0"),
    "answer_temperature": _float(lambda v: v > 0, "> 0"),
    "answer_top_k": _int(lambda v: v >= 0, ">= 0 (0 = off)"),
    "answer_top_p": _float(lambda v: 0 < v <= 1, "in (0, 1]"),
    "max_response_tokens": _int(lambda v: v >= 1, ">= 1"),
    "max_thinking_tokens": _int(lambda v: v >= 1, ">= 1"),
    "cold_stop_entropy": ("float_or_null", lambda v: v is None or v >= 0, "a number >= 0 or null (off)"),
    "cold_stop_steps": _int(lambda v: v >= 1, ">= 1"),
    "lora_rank": _int(lambda v: v >= 0, ">= 0 (0 = full fine-tuning)"),
    "lora_alpha": _float(lambda v: v >= 0, ">= 0"),
    "lora_dropout": _float(lambda v: 0 <= v < 1, "in [0, 1)"),
    "eval_interval": _int(lambda v: v >= 1, ">= 1"),
    "checkpoint_interval": _int(lambda v: v >= 1, ">= 1"),
    "eval_samples": _int(lambda v: v >= 1, ">= 1"),
}


def _check(name: str, value: Any, source: str) -> Any:
    kind, predicate, text = RULES[name]
    if kind == "float_or_null" and value is None:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        ok = is_number and float(value).is_integer()
        value = int(value) if ok else value
    elif kind in ("float", "float_or_null"):
        ok = is_number and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok or not predicate(value):
        raise ValueError(f"{source}.{name} must be {text}, got {value!r}")
    return value


def _reference_default(name: str, hp: dict, method: str, train_size: int) -> Any:
    """SOFT_GRPO.md reference defaults; some follow from fields resolved before them (FIELD_NAMES order)."""
    derived = {
        "n_steps": lambda: math.ceil(train_size / hp["batch_size"]),
        "mini_batch_size": lambda: math.ceil(hp["batch_size"] / 2),
        "loss": lambda: "soft_grpo" if method == "soft_grpo" else "grpo",
        "answer_temperature": lambda: hp["temperature"],
        "answer_top_k": lambda: hp["top_k"],
        "answer_top_p": lambda: hp["top_p"],
        "max_thinking_tokens": lambda: hp["max_response_tokens"],
        "lora_alpha": lambda: float(2 * hp["lora_rank"]),
        "eval_interval": lambda: max(1, hp["n_steps"] // 10),
        "checkpoint_interval": lambda: max(1, hp["n_steps"] // 5),
        "batch_size": lambda: min(64, train_size),
    }
    constants = {"group_size": 8, "ppo_epochs": 1, "learning_rate": 1e-6, "weight_decay": 0.01, "grad_clip": 1.0,
                 "clip_eps": 0.2, "dual_clip": 3.0, "kl_beta": 0.001, "entropy_coef": 0.0, "temperature": 1.0,
                 "top_k": 5, "top_p": 0.95, "min_p": 0.0, "max_topk": 5, "gumbel_tau": 0.1, "noise_scale": 1.0,
                 "embedding_noise": EMBEDDING_NOISE_DEFAULT,
                 "max_response_tokens": 8192, "cold_stop_entropy": None, "cold_stop_steps": 256, "lora_rank": 0,
                 "lora_dropout": 0.0, "eval_samples": 4}
    return derived[name]() if name in derived else constants[name]


# resolution order: every field after the fields its default reads
RESOLUTION_ORDER = ("batch_size", "n_steps", "mini_batch_size", "group_size", "ppo_epochs", "learning_rate",
                    "weight_decay", "grad_clip", "clip_eps", "dual_clip", "kl_beta", "entropy_coef", "loss",
                    "temperature", "top_k", "top_p", "min_p", "max_topk", "gumbel_tau", "noise_scale",
                    "embedding_noise", "answer_temperature", "answer_top_k", "answer_top_p", "max_response_tokens",
                    "max_thinking_tokens", "cold_stop_entropy", "cold_stop_steps", "lora_rank", "lora_alpha",
                    "lora_dropout", "eval_interval", "checkpoint_interval", "eval_samples")
assert sorted(RESOLUTION_ORDER) == sorted(FIELD_NAMES)


def _fits_method(name: str, value: Any, method: str) -> bool:
    """A manifest's recommended loss is for soft-thinking jobs: a grpo job keeps the grpo loss."""
    return name != "loss" or method != "grpo" or value == "grpo"


def resolve_hyperparameters(raw: dict | None, method: str, train_size: int, manifest: dict | None = None,
                            context_length: int | None = None) -> Hyperparameters:
    """Validate user hyperparameters and resolve every "auto" (or missing) field.

    raw: {field: value | "auto"}; method: "soft_grpo" | "grpo"; train_size: number of training prompts;
    manifest: the base model's manifest.json dict (its `recommended_hyperparameters` are used for "auto");
    context_length: caps max_response_tokens.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if train_size < 1:
        raise ValueError("the training file has no examples")
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"hyperparameters must be an object of {{field: value | \"auto\"}}, got {raw!r}")
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"hyperparameters.{unknown[0]} is not a known hyperparameter "
                         f"(known: {', '.join(FIELD_NAMES)})")
    recommended = dict((manifest or {}).get("recommended_hyperparameters") or {})
    hp: dict[str, Any] = {}
    for name in RESOLUTION_ORDER:
        value = raw.get(name, "auto")
        if value != "auto":
            hp[name] = _check(name, value, "hyperparameters")
        elif name in recommended and recommended[name] != "auto" and _fits_method(name, recommended[name], method):
            hp[name] = _check(name, recommended[name], "manifest.recommended_hyperparameters")
        else:
            hp[name] = _reference_default(name, hp, method, train_size)
            if name == "max_response_tokens" and context_length:
                hp[name] = min(hp[name], int(context_length))
    if context_length and hp["max_response_tokens"] > context_length:
        raise ValueError(f"hyperparameters.max_response_tokens ({hp['max_response_tokens']}) exceeds the model "
                         f"context length {context_length}")
    loss = LOSSES[hp["loss"]]
    if method == "grpo" and loss.rollout != "discrete":
        raise ValueError(f"hyperparameters.loss {hp['loss']!r} scores soft rollouts; method \"grpo\" uses the \"grpo\" loss")
    if hp["mini_batch_size"] > hp["batch_size"]:
        raise ValueError(f"hyperparameters.mini_batch_size ({hp['mini_batch_size']}) must be <= batch_size "
                         f"({hp['batch_size']})")
    return Hyperparameters(**hp)


def rollout_mode(hp: Hyperparameters, method: str) -> str:
    """"discrete" for grpo; for soft_grpo the loss's rollouts: "gaussian" for soft_gaussian, else "soft" (the grpo
    loss on soft rollouts scores their emitted tokens)."""
    if method == "grpo":
        return "discrete"
    return "gaussian" if LOSSES[hp.loss].rollout == "gaussian" else "soft"


def rollout_config(hp: Hyperparameters, method: str) -> RolloutConfig:
    """The generation settings of a method's rollouts (soft for soft_grpo, discrete for grpo); evaluation samples
    with the same settings. The answer phase shares min_p with thinking (the contract has no answer_min_p)."""
    thinking = SoftStepConfig(temperature=hp.temperature, top_k=hp.top_k, top_p=hp.top_p, min_p=hp.min_p,
                              max_topk=hp.max_topk, gumbel_tau=hp.gumbel_tau, noise_scale=hp.noise_scale)
    return RolloutConfig(mode=rollout_mode(hp, method), thinking=thinking, embedding_noise=hp.embedding_noise,
                         answer_temperature=hp.answer_temperature, answer_top_k=hp.answer_top_k,
                         answer_top_p=hp.answer_top_p, answer_min_p=hp.min_p,
                         max_response_tokens=hp.max_response_tokens, max_thinking_tokens=hp.max_thinking_tokens,
                         cold_stop_entropy=hp.cold_stop_entropy, cold_stop_steps=hp.cold_stop_steps)


def check_engine_options(backend: str, rollout_engine: str, device: str, rollout: RolloutConfig | None = None) -> bool:
    """Validate a run's explicit compute choices before anything loads; returns whether rollouts use CUDA graphs.

    backend "triton" needs Triton to run on `device` (CUDA, or TRITON_INTERPRET=1); the static engine with the triton
    backend samples with kernel 1, which needs 0 < top_k <= 64 in every phase `rollout` samples (it filters top_p /
    min_p within the top_k set instead of sorting the vocabulary). Errors are ValueErrors naming the option.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if rollout_engine not in ROLLOUT_ENGINES:
        raise ValueError(f"rollout_engine must be one of {', '.join(ROLLOUT_ENGINES)}, got {rollout_engine!r}")
    if rollout_engine == "static" and rollout is not None and rollout.mode == "gaussian":
        raise ValueError("hyperparameters.loss 'soft_gaussian' needs rollout_engine='plain' (the static engine has no "
                         "Gaussian input noise)")
    if backend == "triton":
        from softgrpo.kernels import require_triton
        try:
            require_triton(device)
        except RuntimeError as err:
            raise ValueError(str(err)) from None
        if rollout_engine == "static" and rollout is not None:
            phases = [("answer_top_k", rollout.answer_top_k)] if rollout.answer_temperature != 0 else []
            if rollout.mode == "soft":
                phases.insert(0, ("top_k", rollout.thinking.top_k))
            for name, value in phases:
                if not 0 < value <= TRITON_MAX_TOPK:
                    raise ValueError(f"hyperparameters.{name} must be in 1..{TRITON_MAX_TOPK} for "
                                     f"rollout_engine='static' with backend='triton' (kernel 1 filters within the "
                                     f"top_k set), got {value}; use backend='torch' or rollout_engine='plain'")
    # the static engine captures its decode step in CUDA graphs on CUDA with kernel 1 (the torch sampler syncs the host)
    return rollout_engine == "static" and backend == "triton" and str(device).startswith("cuda")
