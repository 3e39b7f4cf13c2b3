"""recipes/study.py: the CI preset end to end, skipping finished work, and resuming a killed run exactly."""
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
import study  # noqa: E402
import study_eval  # noqa: E402

TIMING = ("session_seconds", "step_seconds", "rollout_seconds", "tokens_per_s")


class Killed(Exception):
    pass


def test_ci_study_writes_tables_and_plots_then_skips_finished_work_when_run_again(tmp_path, monkeypatch):
    out, report = tmp_path / "out", tmp_path / "report"
    args = ["--arms", "ci", "--out", str(out), "--report", str(report), "--threads", "1"]
    assert study.main(args) == 0
    for name in ("validation_pass_at_1.png", "train_reward.png", "pass_at_k.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "study.md").read_text()
    assert "## Pass@1 (test)" in text and "| base |" in text and "NOT chosen on the validation split" in text
    summary = json.loads((report / "study.json").read_text())
    assert set(summary["test"]) == {"base", "grpo", "soft_grpo"}
    for model, modes in summary["test"].items():
        assert set(modes) == {"soft", "discrete"}
        for metrics in modes.values():
            assert set(metrics) == {"pass@1", "pass@2", "pass@4", "thinking_length"}  # 4 samples: no k > 4
            assert all(0 <= v <= 1 for m, s in metrics.items() if m != "thinking_length" for v in s["values"])
    assert all(0 <= s["mean"] <= 1 for s in summary["validation"].values())
    first = (report / "study.json").read_text()

    def no_more_work(*args, **kwargs):
        raise AssertionError("a finished study trained or evaluated again")
    monkeypatch.setattr(study, "train", no_more_work)
    monkeypatch.setattr(study_eval, "rollouts_in_chunks", no_more_work)
    assert study.main(args) == 0
    assert json.loads((report / "study.json").read_text())["test"] == json.loads(first)["test"]
    # a finished run of another configuration is an error before anything runs, not a silent reuse
    assert study.main(args + ["--steps", "3"]) == 2


def comparable(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in TIMING} for e in events if e["type"] in ("metrics", "eval")]


def test_run_killed_between_checkpoints_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    spec = study.preset("ci")
    spec["hyperparameters"].update(n_steps=3, checkpoint_interval=1)
    runner = study.Study(study.MODEL, spec, {})
    inputs = runner.run_inputs(next(a for a in spec["arms"] if a["method"] == "soft_grpo"), seed=0)

    def kill_at_step_2(event):  # after checkpoint 1, with step 2's metrics already logged
        if event["type"] == "metrics" and event["step"] == 2:
            raise Killed
    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        study.train_run(inputs, killed, on_event=kill_at_step_2)
    assert not (killed / "result.json").exists()
    study.train_run(inputs, killed)
    clean = tmp_path / "clean"
    study.train_run(inputs, clean)

    resumed_events = study.read_events(killed / "events.jsonl")
    assert [e["step"] for e in resumed_events if e["type"] == "metrics"] == [1, 2, 3]
    assert [e["resumed_from_step"] for e in resumed_events if e["type"] == "start"] == [0, 1]
    assert comparable(resumed_events) == comparable(study.read_events(clean / "events.jsonl"))
    assert [p.name for p in (killed / "checkpoints").iterdir()] == ["step-000003"]  # older ones pruned
    weights = [load_file(run / "checkpoints/step-000003/model/model.safetensors") for run in (killed, clean)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[1])


def test_majority_vote_ignores_samples_without_a_box_and_breaks_ties_by_first_answer():
    assert study_eval.majority_answer([None, "3", "4", "4", "3"]) == "3"
    assert study_eval.majority_answer([None, None]) is None
    grade = lambda text, example: float(text == f"\\boxed{{{example['answer']}}}")  # noqa: E731
    # blocks of 2: ("5", "7") votes 5 (correct), (None, "7") votes 7 (wrong)
    assert study_eval.majority_correct(["5", "7", None, "7"], {"answer": "5"}, 2, grade) == 0.5
