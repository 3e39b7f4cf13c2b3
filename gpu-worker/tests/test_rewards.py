"""Graders: boxed extraction, parity with math-verify used directly, exact/numeric/regex and spec validation."""
import pytest
from math_verify import parse, verify

from softgrpo.rewards import grade_exact, grade_math, last_boxed, make_grader


def test_last_boxed_takes_the_last_box_with_nested_braces():
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed {7}") == "7"
    assert last_boxed("no box here") is None
    assert last_boxed(r"\boxed{12} and an open \boxed{3") == "12"


@pytest.mark.parametrize(
    "response, gold",
    [
        (r"so \boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{0.5}", r"\frac12"),
        (r"\boxed{42}", "42"),
        (r"\boxed{41}", "42"),
        (r"\boxed{x^2+2x+1}", "(x+1)^2"),
        (r"\boxed{\sqrt{2}}", "2"),
        (r"\boxed{3,4}", "4,3"),
    ],
)
def test_math_grader_agrees_with_math_verify(response, gold):
    expected = verify(parse(f"${gold}$"), parse(response))
    assert grade_math(response, {"answer": gold}) == (1.0 if expected else 0.0)


def test_math_grader_needs_a_box_and_accepts_numeric_answers():
    assert grade_math("the answer is 42", {"answer": 42}) == 0.0
    assert grade_math(r"\boxed{42}", {"answer": 42}) == 1.0


def test_exact_numeric_and_regex_graders():
    assert grade_exact(r"\boxed{ 12 }", {"answer": "12"}) == 1.0
    assert grade_exact(r"\boxed{12.0}", {"answer": "12"}) == 0.0
    numeric = make_grader({"type": "numeric", "tolerance": 1e-3})
    assert numeric(r"\boxed{1,000.5}", {"answer": 1000}) == 1.0
    assert numeric(r"\boxed{1002}", {"answer": 1000}) == 0.0
    assert numeric(r"\boxed{abc}", {"answer": 1000}) == 0.0
    regex = make_grader({"type": "regex", "pattern": r"^yes\b"})
    assert regex("yes it is", {"answer": ""}) == 1.0 and regex("no", {"answer": ""}) == 0.0


@pytest.mark.parametrize(
    "spec, field",
    [({"type": "fuzzy"}, "grader.type"), ({"type": "regex"}, "grader.pattern"),
     ({"type": "regex", "pattern": "("}, "grader.pattern"), ({"type": "numeric", "tolerance": -1}, "grader.tolerance")],
)
def test_invalid_grader_spec_names_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        make_grader(spec)


def test_math_grader_works_outside_the_main_thread():
    import threading

    results = []
    worker = threading.Thread(target=lambda: results.append(grade_math(r"\boxed{1/2}", {"answer": "0.5"})))
    worker.start()
    worker.join()
    assert results == [1.0]
