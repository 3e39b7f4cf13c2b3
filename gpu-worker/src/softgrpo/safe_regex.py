"""The regex dialect of user-supplied patterns (the `regex` grader; docs/CONTRACTS.md "Regex patterns").

Patterns run on google-re2 (RE2's own bindings): matching takes time linear in the text, so no pattern can backtrack
for ever (`(.*.*)*X` included), and RE2 releases the interpreter lock while it matches, so the worker's heartbeat
thread keeps running during a grader call. The API validates and runs the same dialect with re2js
(src/engine/safe-regex.ts); tests/vectors/regex-cases.json runs through both test suites.

A pattern is accepted when RE2 syntax accepts it and
  - it has 1 to MAX_PATTERN_LENGTH code points and is well-formed Unicode (no lone surrogate);
  - its size is at most MAX_PATTERN_SIZE: each character, escape or class member counts 1, a Unicode class (\\pL,
    \\p{Greek}, \\P{..}) 100, and a counted repetition x{n}, x{n,}, x{n,m} counts x n (or m) times; no count may
    exceed 1000;
  - it has no \\C (any byte) and its group names are unique and made of A-Z a-z 0-9 _.
The Unicode class names RE2 knows are the ones the API accepts (src/engine/re2-unicode-classes.json). The size and
the last rule close the places where google-re2 1.1.20251105 and re2js 2.10.0 disagree on what compiles: RE2 accepts
\\C, duplicate and non-ASCII group names, and treats a count of ten digits or more as literal text, while re2js
compiles large repeated classes that RE2 refuses as "pattern too large". The walk below mirrors safe-regex.ts's.
"""
from __future__ import annotations

import re2

MAX_PATTERN_LENGTH = 512
MAX_PATTERN_SIZE = 1000
UNICODE_CLASS_SIZE = 100
MAX_REPEAT = 1000

_OCTAL = "01234567"
_DIGITS = "0123456789"
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # an invalid user pattern is a ValueError, not a line on stderr
    return options


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not in the dialect (a sentence after the field name), or None when it is."""
    if not pattern:
        return "must not be empty"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"must be at most {MAX_PATTERN_LENGTH} characters (got {len(pattern)})"
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        return "must be well-formed Unicode (it has a lone surrogate)"
    try:
        re2.compile(pattern, _options())
    except re2.error as err:
        detail = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        return f"is not a valid RE2 regular expression ({detail})"
    return _dialect_problem(pattern)


def compile_pattern(pattern: str):
    """The compiled pattern (re2's re-like object: .search, .finditer); ValueError naming the problem otherwise."""
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(f"pattern {problem}")
    return re2.compile(pattern, _options())


# The walk below sees only patterns that RE2 syntax accepted, so it reads them without checking their syntax.

def _at(p: str, i: int) -> str:
    return p[i] if i < len(p) else ""


def _read_escape(p: str, i: int) -> tuple[int, int, str | None]:
    """(end, size, problem) of the escape at p[i] == "\\" (not \\Q, which the caller reads)."""
    c = _at(p, i + 1)
    if c == "C":
        return i + 2, 1, "must not use \\C (a single byte)"
    if c in ("p", "P"):
        # google-re2 itself rejects the class names it does not know: no list needed on this side
        end = p.index("}", i + 3) + 1 if _at(p, i + 2) == "{" else i + 3
        return end, UNICODE_CLASS_SIZE, None
    if c == "x":
        return (p.index("}", i + 3) + 1 if _at(p, i + 2) == "{" else i + 4), 1, None
    if c != "" and c in _OCTAL:
        end = i + 2
        while end < i + 4 and _at(p, end) != "" and _at(p, end) in _OCTAL:
            end += 1
        return end, 1, None
    return i + 2, 1, None


def _read_class(p: str, i: int) -> tuple[int, int, str | None]:
    """(end, size, problem) of the bracket class at p[i] == "["."""
    j = i + 2 if _at(p, i + 1) == "^" else i + 1
    size = 0
    first = True
    while first or p[j] != "]":
        first = False
        if p[j] == "[" and _at(p, j + 1) == ":":
            close = p.find(":]", j + 2)
            if close >= 0:
                j = close + 2
                size += 1
                continue
        if p[j] == "\\":
            end, piece, problem = _read_escape(p, j)
            if problem is not None:
                return end, piece, problem
            j = end
            size += piece
        else:
            j += 1
            size += 1
    return j + 1, max(size, 1), None


def _read_repeat(p: str, i: int) -> tuple[int, int] | None:
    """(end, count) of a counted repetition at p[i] == "{" as RE2 reads one ({n}, {n,}, {n,m}; no leading zeros),
    or None (a literal "{")."""
    def number(start: int) -> tuple[int, int] | None:
        k = start
        while _at(p, k) != "" and _at(p, k) in _DIGITS:
            k += 1
        if k == start or (k - start > 1 and p[start] == "0"):
            return None
        return k, int(p[start:k])

    low = number(i + 1)
    if low is None:
        return None
    end, count = low
    if _at(p, end) == "}":
        return end + 1, count
    if _at(p, end) != ",":
        return None
    if _at(p, end + 1) == "}":
        return end + 2, count
    high = number(end + 1)
    if high is None or _at(p, high[0]) != "}":
        return None
    return high[0] + 1, max(count, high[1])


def _dialect_problem(p: str) -> str | None:
    groups = [0]  # the size so far of each open group, the whole pattern first
    operand: int | None = None  # the size of what a repetition here would repeat
    names: set[str] = set()

    def add(size: int) -> None:
        nonlocal operand
        groups[-1] += size
        operand = size

    i = 0
    while i < len(p) and groups[-1] <= MAX_PATTERN_SIZE:  # sizes only grow: stop at the first excess
        c = p[i]
        if c == "\\" and _at(p, i + 1) == "Q":
            i += 2
            while i < len(p) and not (p[i] == "\\" and _at(p, i + 1) == "E"):
                add(1)
                i += 1
            i += 2
        elif c in ("\\", "["):
            end, size, problem = _read_escape(p, i) if c == "\\" else _read_class(p, i)
            if problem is not None:
                return problem
            add(size)
            i = end
        elif c == "(" and _at(p, i + 1) == "?" and _at(p, i + 2) in ("<", "P"):
            start = i + 3 if p[i + 2] == "<" else i + 4  # (?<name> or (?P<name>
            close = p.index(">", start)
            name = p[start:close]
            if not name or not set(name) <= _NAME_CHARS:
                return f'has the group name "{name}": use only A-Z a-z 0-9 _'
            if name in names:
                return f'has two groups named "{name}"'
            names.add(name)
            groups.append(0)
            operand = None
            i = close + 1
        elif c == "(" and _at(p, i + 1) == "?":
            j = i + 2
            while p[j] not in (")", ":"):
                j += 1
            if p[j] == ":":  # (?flags:...) is a group, (?flags) alone only sets flags
                groups.append(0)
            operand = None
            i = j + 1
        elif c == "(":
            groups.append(0)
            operand = None
            i += 1
        elif c == ")":
            add(groups.pop())
            i += 1
        elif c == "{" and _read_repeat(p, i) is not None:
            end, count = _read_repeat(p, i)
            if count > MAX_REPEAT:
                return f"repeats something {count} times (at most {MAX_REPEAT})"
            if operand is not None:
                groups[-1] += operand * (max(count, 1) - 1)
            operand = None
            i = end
        elif c in ("|", "*", "+", "?"):
            operand = None
            i += 1
        else:
            add(1)
            i += 1
    if groups[-1] > MAX_PATTERN_SIZE or groups[0] > MAX_PATTERN_SIZE:
        return (f"is too large: its size is over {MAX_PATTERN_SIZE} (each character counts 1, a Unicode class "
                f"{UNICODE_CLASS_SIZE}, and x{{n}} counts x n times)")
    return None
