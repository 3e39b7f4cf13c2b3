"""Which kernels and rollout loop the worker runs a job with (softgrpo.train's backend / rollout_engine).

    cd gpu-worker && .venv/bin/python -m pytest tests/test_worker_engine_choice.py
"""
import pytest

from softgrpo.config import resolve_hyperparameters
from softgrpo.worker import compute_options, engine_for_job


def test_defaults_follow_the_device_like_the_cli():
    assert compute_options(None, None, "cpu") == ("torch", "plain")
    assert compute_options(None, None, "cuda") == ("triton", "static")
    assert compute_options("torch", None, "cuda") == ("torch", "static")


def test_job_outside_the_static_engines_sampling_runs_on_the_plain_engine_and_says_why(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # lets the Triton backend pass its device check on CPU
    no_top_k = resolve_hyperparameters({"top_k": 0}, "soft_grpo", 10)
    engine, note = engine_for_job("triton", "static", "cpu", no_top_k, "soft_grpo")
    assert engine == "plain" and "top_k" in note
    assert engine_for_job("triton", "static", "cpu", resolve_hyperparameters({}, "soft_grpo", 10), "soft_grpo") == \
        ("static", None)


def test_kernels_that_cannot_run_here_are_an_error_not_a_fallback(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="Triton"):
        engine_for_job("triton", "static", "cpu", resolve_hyperparameters({}, "soft_grpo", 10), "soft_grpo")
