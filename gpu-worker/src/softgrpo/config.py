"""Fine-tune hyperparameters: validation and "auto" resolution, as contract/hyperparameters.json states them.

The rules (types, ranges, "auto" expressions, cross-field rules) are data in the shared contract, which the API reads
too (src/contract/hyperparameters.ts); tests/vectors/hyperparameter-cases.json holds both to one verdict per case.
The API resolves every "auto" at create and stores the resolved set, so the worker normally receives explicit values
only; it checks them again with the same rules (defence in depth) and still resolves "auto" for the CLI and recipes.
Errors are HyperparameterError (a ValueError) naming the field, with the contract's code.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from softgrpo.contract import HYPERPARAMETERS, evaluate, variables
from softgrpo.loss import LOSSES
from softgrpo.rollout import RolloutConfig
from softgrpo.sampler import SoftStepConfig

METHODS = tuple(HYPERPARAMETERS["methods"])
BACKENDS = ("torch", "triton")  # kernels: torch references or the Triton kernels (softgrpo.kernels)
ROLLOUT_ENGINES = ("plain", "static")  # softgrpo.rollout (reference) or softgrpo.gpu_engine (static KV cache)
TRITON_MAX_TOPK = 64  # kernels.soft_token_step.MAX_TOPK: the Triton sampler filters within the top_k set
FIELDS: dict[str, dict] = HYPERPARAMETERS["fields"]
RULES: list[dict] = HYPERPARAMETERS["rules"]


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
    prompt_truncation: str

    def to_dict(self) -> dict:
        return asdict(self)


FIELD_NAMES = tuple(f.name for f in fields(Hyperparameters))
if set(FIELD_NAMES) != set(FIELDS):
    raise RuntimeError(f"softgrpo.config.Hyperparameters and contract/hyperparameters.json disagree: "
                       f"{sorted(set(FIELD_NAMES) ^ set(FIELDS))}")
if {name: loss.rollout for name, loss in LOSSES.items()} != {n: v["rollout"] for n, v in HYPERPARAMETERS["losses"].items()}:
    raise RuntimeError("softgrpo.loss.LOSSES and contract/hyperparameters.json \"losses\" disagree")


class HyperparameterError(ValueError):
    """A hyperparameter the contract rejects. param: the field; code: the contract's code (invalid_type,
    out_of_range, unknown_hyperparameter, invalid_combination); source: "request" or "manifest"."""

    def __init__(self, param: str, code: str, detail: str, source: str = "request"):
        self.param, self.code, self.source = param, code, source
        prefix = "manifest.recommended_hyperparameters" if source == "manifest" else "hyperparameters"
        super().__init__(f"{prefix}.{param} {detail}")


def choices(spec: dict) -> list[str] | None:
    return list(HYPERPARAMETERS["losses"]) if spec.get("enum_from") == "losses" else spec.get("enum")


def describe_field(spec: dict) -> str:
    """`an integer in [2, 64]`, `a number in (0, 1)`, `one of "none", "left"`, `... or null`."""
    options = choices(spec)
    if options:
        text = "one of " + ", ".join(f'"{o}"' for o in options)
    else:
        lo = spec.get("exclusiveMinimum", spec.get("minimum"))
        hi = spec.get("exclusiveMaximum", spec.get("maximum"))
        text = (f"{'an integer' if spec['type'] == 'integer' else 'a number'} in "
                f"{'(' if 'exclusiveMinimum' in spec else '['}{'-inf' if lo is None else lo}, "
                f"{'inf' if hi is None else hi}{')' if 'exclusiveMaximum' in spec else ']'}")
    return f"{text}, or null" if spec.get("nullable") else text


def field_problem(name: str, value: Any) -> tuple[str, str] | None:
    """(code, detail) when `value` (not "auto") is not a valid `name`, else None."""
    spec = FIELDS.get(name)
    if spec is None:
        return "unknown_hyperparameter", f"is not a known hyperparameter (known: {', '.join(FIELDS)})"
    must = f"must be {describe_field(spec)} or \"auto\""
    if value is None:
        return None if spec.get("nullable") else ("invalid_type", f"{must}, got null")
    if spec["type"] == "string":
        if not isinstance(value, str):
            return "invalid_type", f"{must}, got {value!r}"
        return None if value in choices(spec) else ("out_of_range", f"{must}, got {value!r}")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not is_number or (spec["type"] == "integer" and not float(value).is_integer()):
        return "invalid_type", f"{must}, got {value!r}"
    in_range = (("minimum" not in spec or value >= spec["minimum"])
                and ("exclusiveMinimum" not in spec or value > spec["exclusiveMinimum"])
                and ("maximum" not in spec or value <= spec["maximum"])
                and ("exclusiveMaximum" not in spec or value < spec["exclusiveMaximum"]))
    return None if in_range else ("out_of_range", f"{must}, got {value!r}")


def _normalized(name: str, value: Any) -> Any:
    kind = FIELDS[name]["type"]
    if value is None or kind == "string":
        return value
    return int(value) if kind == "integer" else float(value)


def _resolution_order() -> tuple[str, ...]:
    """Each field after every field its "auto" expression reads (ties: contract order), as the API orders them."""
    order: list[str] = []
    pending = list(FIELDS)
    while pending:
        ready = [f for f in pending if all(v not in FIELDS or v in order for v in variables(FIELDS[f]["auto"]))]
        if not ready:
            raise RuntimeError(f"contract/hyperparameters.json: \"auto\" rules read each other in a cycle: {pending}")
        order.append(ready[0])
        pending.remove(ready[0])
    return tuple(order)


RESOLUTION_ORDER = _resolution_order()


def _rule_broken(rule: dict, value: Any, scope: dict) -> tuple[bool, Any]:
    """(broken, bound) of one rule for `value`; rules whose `when` is falsy or whose bound is None hold."""
    if "when" in rule and not evaluate(rule["when"], scope):
        return False, None
    for kind in ("at_most", "greater_than", "one_of"):
        if kind in rule:
            bound = evaluate(rule[kind], scope)
            if bound is None:
                return False, None
            broken = {"at_most": lambda: value > bound, "greater_than": lambda: not value > bound,
                      "one_of": lambda: value not in bound}[kind]()
            return broken, bound
    return False, None


def _rule_detail(rule: dict, value: Any, scope: dict) -> str:
    message = rule["message"]
    for key, val in scope.items():
        message = message.replace("{" + key + "}", str(val))
    return f"{message}, got {value!r}"


def resolve_hyperparameters(raw: dict | None, method: str, train_size: int, manifest: dict | None = None,
                            context_length: int | None = None) -> Hyperparameters:
    """Check user hyperparameters and resolve every "auto" (or missing) field (contract "resolution").

    raw: {field: value | "auto"}; method: "soft_grpo" | "grpo"; train_size: number of training examples;
    manifest: the base model's manifest.json dict (its `recommended_hyperparameters` come before the "auto"
    expressions); context_length: the model's context (None: the rules that read it are skipped).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if train_size < 1:
        raise ValueError("the training file has no examples")
    if raw is not None and not isinstance(raw, dict):
        raise HyperparameterError("hyperparameters", "invalid_type",
                                  f"must be an object of {{field: value | \"auto\"}}, got {raw!r}")
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise HyperparameterError(unknown[0], *field_problem(unknown[0], 0))
    recommended = dict((manifest or {}).get("recommended_hyperparameters") or {})
    scope: dict[str, Any] = {"train_size": train_size, "context_length": context_length, "method": method}
    explicit = set()
    for name in RESOLUTION_ORDER:
        value = raw.get(name, "auto")
        if value != "auto":
            problem = field_problem(name, value)
            if problem:
                raise HyperparameterError(name, *problem)
            scope[name] = _normalized(name, value)
            explicit.add(name)
            continue
        if name in recommended and recommended[name] != "auto":
            rec = recommended[name]
            problem = field_problem(name, rec)
            if problem:
                raise HyperparameterError(name, *problem, source="manifest")
            if not any(r["param"] == name and r.get("on_auto") == "skip_manifest" and _rule_broken(r, rec, scope)[0]
                       for r in RULES):
                scope[name] = _normalized(name, rec)
                continue
        derived = evaluate(FIELDS[name]["auto"], scope)
        problem = field_problem(name, derived)
        if problem:
            raise HyperparameterError(name, problem[0], f"{problem[1]} (auto: {FIELDS[name]['auto']})")
        scope[name] = _normalized(name, derived)
    for rule in RULES:
        name = rule["param"]
        broken, bound = _rule_broken(rule, scope[name], scope)
        if not broken:
            continue
        clamp = name not in explicit and rule.get("on_auto") == "clamp" and "at_most" in rule
        if not clamp or field_problem(name, bound):
            raise HyperparameterError(name, "invalid_combination", _rule_detail(rule, scope[name], scope))
        scope[name] = _normalized(name, bound)
    return Hyperparameters(**{name: scope[name] for name in FIELD_NAMES})


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
