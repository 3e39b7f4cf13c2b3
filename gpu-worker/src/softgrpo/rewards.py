"""Rewards: grade a response's answer text against a dataset example (1.0 correct, 0.0 otherwise).

Graders (docs/CONTRACTS.md "Graders"), selected by a spec dict such as {"type": "math"}:
    math     math-verify equivalence of the last \\boxed{} in the answer text and the example's `answer`
    exact    trimmed string equality of the last \\boxed{} content and `answer`
    numeric  |pred - answer| <= tolerance * |answer| (relative, default 1e-6) on the last \\boxed{} content
    regex    `pattern` matches somewhere in the answer text (RE2 search: linear time, docs/CONTRACTS.md "Regex patterns")
Every grader takes a `scope` option: "answer" (the default) grades the answer phase only (the text after </think>):
a box inside the thinking does not count, so a response that never closes its thinking earns 0. "response" grades
the whole response (thinking text, `</think>`, answer), as the SofT-GRPO reference reward does (it takes the last
\\boxed{} of the whole decoded response). `graded_text(rollout, grader)` picks the text.
"""
from __future__ import annotations

import math
import threading
from typing import Callable

from math_verify import parse, verify

from softgrpo.safe_regex import compile_pattern

Grader = Callable[[str, dict], float]
MATH_TIMEOUT_S = 5  # per parse / verify call, against pathological expressions


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} in text (nested braces balanced), or None when there is none."""
    start = text.rfind("\\boxed")
    while start != -1:
        i = start + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j]
        start = text.rfind("\\boxed", 0, start)  # unbalanced or brace-less: try the box before
    return None


def _answer_of(example: dict) -> str:
    return str(example["answer"]).strip()


def grade_math(answer_text: str, example: dict) -> float:
    """math-verify equivalence (gold first, as math_verify.verify expects) of the last boxed answer."""
    predicted = last_boxed(answer_text)
    if predicted is None:
        return 0.0
    # math-verify's timeouts use signals, which only work in the main thread: elsewhere they are switched off
    timeout = MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"\\boxed{{{_answer_of(example)}}}", parsing_timeout=timeout)
    target = parse(f"\\boxed{{{predicted}}}", parsing_timeout=timeout)
    return 1.0 if verify(gold, target, timeout_seconds=timeout) else 0.0


def grade_exact(answer_text: str, example: dict) -> float:
    predicted = last_boxed(answer_text)
    return 1.0 if predicted is not None and predicted.strip() == _answer_of(example) else 0.0


def _to_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "").replace("$", "").replace("\\!", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def make_numeric(tolerance: float = 1e-6) -> Grader:
    def grade_numeric(answer_text: str, example: dict) -> float:
        boxed = last_boxed(answer_text)
        predicted = _to_number(boxed) if boxed is not None else None
        gold = _to_number(_answer_of(example))
        if predicted is None or gold is None:
            return 0.0
        return 1.0 if math.isclose(predicted, gold, rel_tol=tolerance, abs_tol=0.0) else 0.0

    return grade_numeric


def make_regex(pattern: str) -> Grader:
    """Raises ValueError when `pattern` is not in the dialect of softgrpo.safe_regex."""
    compiled = compile_pattern(pattern)

    def grade_regex(answer_text: str, example: dict) -> float:
        # as UTF-8 bytes: RE2's own encoding (no offsets to map back), and a lone surrogate cannot fail the job
        return 1.0 if compiled.search(answer_text.encode("utf-8", "replace")) else 0.0

    return grade_regex


GRADER_TYPES = ("math", "exact", "numeric", "regex")
SCOPES = ("answer", "response")


def graded_text(rollout, grader) -> str:
    """The text `grader` scores for a rollout (softgrpo.rollout.Rollout): its answer, or the whole response."""
    if getattr(grader, "scope", "answer") == "response":
        return f"{rollout.thinking_text}</think>{rollout.answer_text}"
    return rollout.answer_text


def make_grader(spec: dict | None) -> Grader:
    """The grader for a spec dict ({"type": ..., "scope"?: "answer" | "response"} plus its options); None means
    {"type": "math"}. The returned function carries `.scope`. Raises ValueError naming the field when invalid."""
    if isinstance(spec, dict):
        scope = spec.get("scope", "answer")
        if scope not in SCOPES:
            raise ValueError(f"grader.scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        spec = {key: value for key, value in spec.items() if key != "scope"}
    else:
        scope = "answer"
    grade = _make_grader(spec)

    def scoped(text: str, example: dict) -> float:
        return grade(text, example)
    scoped.scope = scope
    scoped.__name__ = getattr(grade, "__name__", "grade")
    return scoped


def _make_grader(spec: dict | None) -> Grader:
    spec = {"type": "math"} if spec is None else spec
    if not isinstance(spec, dict):
        raise ValueError(f"grader must be an object like {{\"type\": \"math\"}}, got {spec!r}")
    kind = spec.get("type")
    if kind == "math":
        return grade_math
    if kind == "exact":
        return grade_exact
    if kind == "numeric":
        tolerance = spec.get("tolerance", 1e-6)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ValueError(f"grader.tolerance must be a number >= 0, got {tolerance!r}")
        return make_numeric(float(tolerance))
    if kind == "regex":
        pattern = spec.get("pattern")
        if not isinstance(pattern, str):
            raise ValueError("grader.pattern is required for a regex grader (a string)")
        try:
            return make_regex(pattern)
        except ValueError as err:
            raise ValueError(f"grader.{err}") from None
    raise ValueError(f"grader.type must be one of {', '.join(GRADER_TYPES)}, got {kind!r}")
