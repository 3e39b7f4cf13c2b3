"""The regex dialect (softgrpo.safe_regex) against the shared case file tests/vectors/regex-cases.json, which
tests/engine/safe-regex.test.ts runs through re2js; and the two attacks of issue 11 on the worker: a catastrophic
pattern in the regex grader, and the heartbeat thread starving while a grader runs."""
import json
import random
from pathlib import Path

import pytest
import re2

from softgrpo.rewards import make_grader
from softgrpo.safe_regex import MAX_PATTERN_LENGTH, MAX_PATTERN_SIZE, compile_pattern, pattern_problem
from softgrpo.worker import Heartbeat

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests" / "vectors" / "regex-cases.json").read_text(encoding="utf-8"))
UNICODE_CLASSES = json.loads((ROOT / "src" / "engine" / "re2-unicode-classes.json").read_text(encoding="utf-8"))


def vote_answer(regex, text: str) -> str | None:
    """What the API's vote extraction takes (src/engine/safe-regex.ts lastMatchAnswer): the first group of the last
    match, or the whole match when that group did not take part."""
    last = None
    for last in regex.finditer(text):
        pass
    if last is None:
        return None
    group = last.group(1) if regex.groups >= 1 else None
    return group if group is not None else last.group(0)


def test_holds_the_limits_of_the_case_file():
    assert MAX_PATTERN_LENGTH == CASES["max_pattern_length"]
    assert MAX_PATTERN_SIZE == CASES["max_pattern_size"]


@pytest.mark.parametrize("case", CASES["valid"], ids=lambda c: c["note"][:60])
def test_accepts_every_valid_case_and_finds_its_first_match_and_vote_answer(case):
    assert pattern_problem(case["pattern"]) is None
    regex = compile_pattern(case["pattern"])
    match = regex.search(case["text"])
    assert (match.group(0) if match else None) == case["first"]
    assert vote_answer(regex, case["text"]) == case["answer"]
    grader = make_grader({"type": "regex", "pattern": case["pattern"]})
    assert grader(case["text"], {"answer": ""}) == (0.0 if case["first"] is None else 1.0)


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["why"][:60])
def test_rejects_every_invalid_case_naming_the_field(case):
    assert isinstance(pattern_problem(case["pattern"]), str)
    with pytest.raises(ValueError, match=r"^grader\.pattern "):
        make_grader({"type": "regex", "pattern": case["pattern"]})


def test_google_re2_knows_every_unicode_class_the_api_accepts():
    options = re2.Options()
    options.log_errors = False
    for name in UNICODE_CLASSES["categories"] + UNICODE_CLASSES["scripts"]:
        re2.compile(f"\\p{{{name}}}", options)
        assert pattern_problem(f"[\\P{{{name}}}x]") is None, name


def test_regex_grader_runs_a_catastrophic_backtracking_pattern_over_a_long_text_to_the_end():
    # Python's re takes exponential time here (and holds the interpreter lock throughout); the test only has to finish
    grader = make_grader({"type": "regex", "pattern": "(.*.*)*X"})
    assert grader("a" * 100_000, {"answer": ""}) == 0.0
    assert grader("a" * 100_000 + "X", {"answer": ""}) == 1.0


class CountingApi:
    def __init__(self):
        self.beats = 0

    def heartbeat(self, job_id, lease_token, trained_steps):
        self.beats += 1
        return {"action": "continue"}


def test_worker_heartbeat_keeps_beating_while_a_regex_grader_runs():
    # 2^20 DFA states: RE2 gives up on its DFA cache and scans with its NFA, a long (linear) call into C++. A call that
    # held the interpreter lock would let the heartbeat thread beat at most once during it.
    grader = make_grader({"type": "regex", "pattern": "[ab]*a[ab]{20}X"})
    text = "".join(random.Random(0).choices("ab", k=2_000_000))
    api = CountingApi()
    heartbeat = Heartbeat(api, "ftjob-test", "lease", interval=0.002)
    heartbeat.start()
    try:
        before = api.beats
        assert grader(text, {"answer": ""}) == 0.0
        during = api.beats - before
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=5)
    assert during >= 5, f"the heartbeat beat {during} times while the grader ran"
