"""The GenerationRequest of `serve` (src/engine/types.ts), checked field by field: every value out of range answers 400
naming the field (RequestError), never a failure inside the sampler. The ranges are the Node schema's."""
from __future__ import annotations

import math
from typing import Callable

from softgrpo.rollout import RolloutConfig
from softgrpo.sampler import SoftStepConfig

class RequestError(ValueError):
    """Bad request content; `param` names the field (answered with 400)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def _field(obj: dict, name: str, kind, prefix: str = ""):
    if not isinstance(obj, dict) or name not in obj:
        raise RequestError(prefix + name, f"{prefix + name} is required")
    value = obj[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RequestError(prefix + name, f"{prefix + name} must be {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise RequestError(prefix + name, f"{prefix + name} must be a finite number")
    return value


def _ranged(obj: dict, name: str, kind, prefix: str, ok, text: str):
    """_field plus a range check; `text` says the range in the 400 message (the Node schema's ranges)."""
    value = _field(obj, name, kind, prefix)
    if not ok(value):
        raise RequestError(prefix + name, f"{prefix + name} must be {text}, got {value!r}")
    return value


def _sampling(obj: dict, prefix: str, greedy_ok: bool) -> tuple[float, int, float, float]:
    """(temperature, top_k, top_p, min_p) of a SamplingSettings object. Only the answer phase may be greedy (0)."""
    if greedy_ok:
        temperature = _ranged(obj, "temperature", float, prefix, lambda v: v >= 0, ">= 0 (0 = greedy)")
    else:
        temperature = _ranged(obj, "temperature", float, prefix, lambda v: v > 0, "> 0")
    return (temperature, _ranged(obj, "top_k", int, prefix, lambda v: v >= 0, ">= 0 (0 = off)"),
            _ranged(obj, "top_p", float, prefix, lambda v: 0 < v <= 1, "in (0, 1]"),
            _ranged(obj, "min_p", float, prefix, lambda v: 0 <= v < 1, "in [0, 1)"))


def rollout_config(request: dict, max_tokens: int, vocab_size: int | None = None) -> RolloutConfig:
    """The RolloutConfig of a GenerationRequest (every field required: the Node side resolves defaults).
    Values out of range answer 400 naming the field, never a failure inside the sampler."""
    soft, answer = _field(request, "soft_thinking", dict), _field(request, "answer", dict)
    mode = _field(request, "mode", str)
    if mode not in ("soft", "discrete"):
        raise RequestError("mode", "mode must be 'soft' or 'discrete'")
    st = "soft_thinking."
    temperature, top_k, top_p, min_p = _sampling(soft, st, greedy_ok=False)
    max_k = min(64, vocab_size or 64)
    max_topk = _ranged(soft, "max_topk", int, st, lambda v: 1 <= v <= max_k, f"in 1..{max_k}")
    gumbel_tau = _ranged(soft, "gumbel_tau", float, st, lambda v: v > 0, "> 0")
    noise_scale = _ranged(soft, "noise_scale", float, st, lambda v: v >= 0, ">= 0")
    max_thinking = _ranged(soft, "max_thinking_tokens", int, st, lambda v: v >= 1, ">= 1")
    if "cold_stop" not in soft:
        raise RequestError(st + "cold_stop", f"{st}cold_stop is required (null = off)")
    cold = soft["cold_stop"]
    if cold is not None and not isinstance(cold, dict):
        raise RequestError(st + "cold_stop", f"{st}cold_stop must be an object or null")
    cs = st + "cold_stop."
    answer_temperature, answer_top_k, answer_top_p, answer_min_p = _sampling(answer, "answer.", greedy_ok=True)
    if answer_temperature == 0 and mode == "soft" and noise_scale != 0:
        raise RequestError(st + "noise_scale", f"{st}noise_scale must be 0 with answer.temperature 0 (greedy end to "
                                               f"end), got {noise_scale!r}")
    return RolloutConfig(
        mode=mode,
        thinking=SoftStepConfig(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, max_topk=max_topk,
                                gumbel_tau=gumbel_tau, noise_scale=noise_scale),
        answer_temperature=answer_temperature, answer_top_k=answer_top_k, answer_top_p=answer_top_p,
        answer_min_p=answer_min_p,
        max_response_tokens=max_tokens,
        max_thinking_tokens=max_thinking,
        cold_stop_entropy=None if cold is None else _ranged(cold, "entropy", float, cs, lambda v: v >= 0, ">= 0"),
        cold_stop_steps=256 if cold is None else _ranged(cold, "steps", int, cs, lambda v: v >= 1, ">= 1"),
    )


def _messages(request: dict) -> list[dict]:
    messages = _field(request, "messages", list)
    if not messages:
        raise RequestError("messages", "messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise RequestError(f"messages.{i}.role", f"messages[{i}].role must be 'system', 'user' or 'assistant'")
        if not isinstance(m.get("content"), str):
            raise RequestError(f"messages.{i}.content", f"messages[{i}].content must be a string")
    return messages


MAX_STOP_STRINGS, MAX_TOP_LOGPROBS = 4, 20


def _stop_and_logprobs(request: dict) -> tuple[list[str], int | None]:
    """The optional `stop` (list of up to 4 non-empty strings) and `logprobs` (null or 0..20) of a request."""
    stop = request.get("stop")
    if stop is None:
        stop = []
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS
            or not all(isinstance(x, str) and x for x in stop)):
        raise RequestError("stop", f"stop must be a list of at most {MAX_STOP_STRINGS} non-empty strings")
    top = request.get("logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise RequestError("logprobs", f"logprobs must be null or an integer in 0..{MAX_TOP_LOGPROBS}, got {top!r}")
    return stop, top


def cut_at_stop(decode: Callable[[list[int]], str], answer_ids: list[int], stop: list[str]) -> tuple[int, str] | None:
    """(answer tokens kept, answer text) at the first answer token whose decoded text contains a stop string, the
    text cut before the earliest one; None when no stop string appears. Mirrors src/engine/stop-strings.ts."""
    if not stop or not any(s in decode(answer_ids) for s in stop):
        return None
    for kept in range(1, len(answer_ids) + 1):
        text = decode(answer_ids[:kept])
        found = [at for at in (text.find(s) for s in stop) if at >= 0]
        if found:
            return kept, text[:min(found)]
    return None
