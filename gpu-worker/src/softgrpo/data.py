"""Training / validation JSONL: loading and validation, as contract/dataset.json states the line rules.

Each non-blank line is a JSON object with either `prompt` (a string that is not only whitespace) or `messages` (a
non-empty list of {role, content}), and `answer` (a string or a finite number). Other keys are kept for graders.
Lines are split on "\\n" only (a CR at a line's end is dropped), exactly as the API splits them at upload
(src/contract/dataset.ts); tests/vectors/dataset-cases.json holds both to one verdict per case. Every line is checked
before training starts; the error lists the failing lines by number and names the field.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from softgrpo.contract import DATASET

MAX_REPORTED_ERRORS = 20
MAX_DEPTH: int = DATASET["max_depth"]
ROLES: list[str] = DATASET["roles"]
_WHITESPACE = frozenset(DATASET["whitespace"])
_BLANK = frozenset(DATASET["blank_line_chars"])
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins escaped pairs, so any surrogate left is lone


class DatasetError(ValueError):
    """The dataset cannot be used; `errors` holds one "line N: ..." message per problem found, `problems` the
    (line, code) pairs in the same order (line 0: the whole file)."""

    def __init__(self, source: str, errors: list[str], problems: list[tuple[int, str]] | None = None):
        self.errors = errors
        self.problems = problems or []
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
        super().__init__(f"{source}: " + "; ".join(shown) + more)


def problem_text(code: str, **params) -> str:
    """The contract's sentence for a problem, its {placeholders} filled."""
    values = {"max_depth": MAX_DEPTH, "roles": ", ".join(ROLES), **params}
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), DATASET["problems"][code])


class _Problem(Exception):
    def __init__(self, code: str, detail: str | None = None, **params):
        self.code, self.detail = code, detail or problem_text(code, **params)


def nested_too_deep(text: str) -> bool:
    """Whether the text opens more than MAX_DEPTH arrays/objects at once (brackets outside strings), before parsing
    (json.loads would recurse once per level)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def has_lone_surrogate(value) -> bool:
    """Whether any string or key of a parsed JSON value holds a lone surrogate."""
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_LONE_SURROGATE.search(k) or has_lone_surrogate(v) for k, v in value.items())
    return False


def _finite_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))  # an integer beyond the float range is Infinity in JavaScript
    except OverflowError:
        return False


def _example_problem(example) -> _Problem | None:
    """The first rule a parsed line breaks, from not_object on (contract order), or None."""
    if not isinstance(example, dict):
        return _Problem("not_object")
    has_prompt = "prompt" in example
    if has_prompt == ("messages" in example):
        return _Problem("prompt_or_messages")
    if has_prompt:
        prompt = example["prompt"]
        if not isinstance(prompt, str) or all(ch in _WHITESPACE for ch in prompt):
            return _Problem("invalid_prompt")
    else:
        messages = example["messages"]
        if not isinstance(messages, list) or not messages:
            return _Problem("invalid_messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES \
                    or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
                return _Problem("invalid_message", index=i)
    if "answer" not in example:
        return _Problem("missing_answer")
    answer = example["answer"]
    if not (isinstance(answer, str) or _finite_number(answer)):
        return _Problem("invalid_answer")
    return None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def check_line(text: str, number: int) -> dict | None:
    """One decoded line (without its "\\n"): None when blank, else the example; raises _Problem otherwise."""
    if text.endswith(DATASET["strip_line_end"]):
        text = text[:-1]
    if number == 1 and text.startswith(DATASET["byte_order_mark"]):
        text = text[1:]
    if all(ch in _BLANK for ch in text):
        return None
    if nested_too_deep(text):
        raise _Problem("too_deep")
    try:
        example = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise _Problem("invalid_json", f"{problem_text('invalid_json')} ({err.msg} at column {err.colno})") from None
    except ValueError as err:
        raise _Problem("invalid_json", f"{problem_text('invalid_json')} ({err})") from None
    if has_lone_surrogate(example):
        raise _Problem("lone_surrogate")
    problem = _example_problem(example)
    if problem:
        raise problem
    return example


def parse_jsonl_lines(data: bytes | str, source: str = "dataset") -> list[tuple[int, dict]]:
    """Parse and validate JSONL (bytes, or already decoded text); raise DatasetError listing every bad line.
    Returns (line number, example) pairs in order."""
    separator = DATASET["line_separator"]
    lines = data.split(separator.encode()) if isinstance(data, bytes) else data.split(separator)
    if lines and not lines[-1]:
        lines.pop()  # the text after the last "\n" is a line only when it is not empty
    examples, errors, problems = [], [], []
    for number, line in enumerate(lines, start=1):
        try:
            if isinstance(line, bytes):
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Problem("invalid_utf8") from None
            example = check_line(line, number)
        except _Problem as problem:
            errors.append(f"line {number}: {problem.detail}")
            problems.append((number, problem.code))
            continue
        if example is not None:
            examples.append((number, example))
    if errors:
        raise DatasetError(source, errors, problems)
    if not examples:
        raise DatasetError(source, [problem_text("no_examples")], [(0, "no_examples")])
    return examples


def parse_jsonl(data: bytes | str, source: str = "dataset") -> list[dict]:
    """Parse and validate JSONL; raise DatasetError listing every bad line. Returns the examples in order."""
    return [example for _, example in parse_jsonl_lines(data, source)]


def load_jsonl(path: str | Path) -> list[dict]:
    """Read and validate a JSONL dataset file (see parse_jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(str(path), ["file not found"])
    return parse_jsonl(path.read_bytes(), str(path))


def example_messages(example: dict) -> list[dict]:
    """The chat messages of an example: `messages`, or one user message holding `prompt`."""
    if "messages" in example:
        return [{"role": m["role"], "content": m["content"]} for m in example["messages"]]
    return [{"role": "user", "content": example["prompt"]}]


def fit_prompts(prompts: list[list[int]], max_response_tokens: int, context_length: int | None, truncation: str,
                source: str = "dataset", line_numbers: list[int] | None = None) -> list[list[int]]:
    """The prompts' token ids as training uses them: every prompt plus max_response_tokens must fit the context
    (contract field prompt_truncation). "none": DatasetError naming the lines that do not fit (the API rejects the
    same lines at create); "left": such a prompt keeps its last context_length - max_response_tokens tokens.
    context_length None: no check."""
    if context_length is None:
        return prompts
    budget = context_length - max_response_tokens
    if truncation == "left":
        return [p[-budget:] if len(p) > budget else p for p in prompts]
    numbers = line_numbers or [i + 1 for i in range(len(prompts))]
    what = "line" if line_numbers else "example"
    long = [(n, len(p)) for n, p in zip(numbers, prompts) if len(p) > budget]
    if long:
        errors = [f"{what} {n}: the prompt is {size} tokens; with max_response_tokens {max_response_tokens} it does not "
                  f"fit the model's context of {context_length} tokens (at most {budget} prompt tokens; set "
                  f"prompt_truncation \"left\" to keep their ends)" for n, size in long]
        raise DatasetError(source, errors, [(n, "prompt_too_long") for n, _ in long])
    return prompts
