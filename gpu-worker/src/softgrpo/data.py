"""Training / validation JSONL: loading and validation (docs/CONTRACTS.md "Dataset JSONL line").

Each non-blank line is a JSON object with either `prompt` (a string) or `messages` (a list of {role, content}
strings), and `answer` (a string or a number). Other keys are kept for graders. Every line is checked before
training starts; the error lists the failing lines by number and names the field.
"""
from __future__ import annotations

import json
from pathlib import Path

MAX_REPORTED_ERRORS = 20


class DatasetError(ValueError):
    """The dataset cannot be used; `errors` holds one "line N: ..." message per problem found."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
        super().__init__(f"{source}: " + "; ".join(shown) + more)


def _line_problem(example) -> str | None:
    if not isinstance(example, dict):
        return "must be a JSON object"
    has_prompt, has_messages = "prompt" in example, "messages" in example
    if has_prompt == has_messages:
        return "needs exactly one of 'prompt' or 'messages'"
    if has_prompt and (not isinstance(example["prompt"], str) or not example["prompt"].strip()):
        return "field 'prompt' must be a non-empty string"
    if has_messages:
        messages = example["messages"]
        if not isinstance(messages, list) or not messages:
            return "field 'messages' must be a non-empty list of {role, content}"
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                    or not isinstance(message.get("content"), str):
                return f"field 'messages[{i}]' must be an object with string 'role' and 'content'"
    if "answer" not in example:
        return "missing field 'answer'"
    answer = example["answer"]
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return "field 'answer' must be a string or a number"
    return None


def parse_jsonl(text: str, source: str = "dataset") -> list[dict]:
    """Parse and validate JSONL text; raise DatasetError listing every bad line. Returns the examples in order."""
    examples, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as err:
            errors.append(f"line {number}: invalid JSON ({err.msg} at column {err.colno})")
            continue
        problem = _line_problem(example)
        if problem:
            errors.append(f"line {number}: {problem}")
        else:
            examples.append(example)
    if errors:
        raise DatasetError(source, errors)
    if not examples:
        raise DatasetError(source, ["no examples (the file is empty)"])
    return examples


def load_jsonl(path: str | Path) -> list[dict]:
    """Read and validate a JSONL dataset file (see parse_jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(str(path), ["file not found"])
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark on line 1 is allowed, as the API allows it
    except UnicodeDecodeError:
        raise DatasetError(str(path), ["not UTF-8 text"]) from None
    return parse_jsonl(text, str(path))


def example_messages(example: dict) -> list[dict]:
    """The chat messages of an example: `messages`, or one user message holding `prompt`."""
    if "messages" in example:
        return [{"role": m["role"], "content": m["content"]} for m in example["messages"]]
    return [{"role": "user", "content": example["prompt"]}]
