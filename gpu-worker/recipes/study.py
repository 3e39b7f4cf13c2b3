"""Compare fine-tuning methods on the bundled tiny model: train arms x seeds, evaluate on the test split, report.

For every arm (a name, a method "grpo" | "soft_grpo" and hyperparameters, among them the loss and learning rate) and
seed: train with softgrpo.train.train on models/tiny/data/train.jsonl, evaluating the validation split every
eval_interval steps; then evaluate the final model, and the base model once, on the first --test-problems test
problems x --test-samples samples in two inference modes (soft thinking and discrete; study_eval.py); then write
markdown tables and PNG plots (study_report.py). The full study, from the repository root:

    gpu-worker/.venv/bin/python gpu-worker/recipes/study.py --arms full --out runs/study --report docs/results

CI-sized (2 arms x 1 seed x 2 steps, 2 test problems x 4 samples): `--arms ci`. `--arms` also takes a JSON file
{"arms": [{"name", "method", "hyperparameters"}], "seeds", "hyperparameters", "validation_problems",
"test_problems", "test_samples"} (a bare list means just the arms). Hyperparameters an arm leaves out come from the
model manifest's recommended_hyperparameters ("auto"); precedence: manifest < study < arm < --set < --steps.

Resumable: kill it at any point and run the same command again. Under --out:
    runs/<arm>/seed-<s>/checkpoints/   train()'s checkpoints; only the latest is kept (train resumes from it)
    runs/<arm>/seed-<s>/events.jsonl   every event, appended; on resume, events after the checkpoint are dropped
    runs/<arm>/seed-<s>/result.json    written last: a finished run, skipped next time (an error if its
                                       hyperparameters differ from this command's: use another --out)
    eval/<base | arm-seed-s>/<mode>.json  cached test evaluations

The validation events are train()'s own: each arm samples in its training rollout mode (discrete for grpo, soft
for soft_grpo and soft_grpo_rb, Gaussian-noise soft for soft_gaussian), so validation curves of different arms are
not in one inference mode; the test tables are (both modes for every model).

The learning rate of each arm must be chosen on the VALIDATION split only (sweeps scored by validation Pass@1);
the test split is read by the final evaluation alone. FULL_PRESET_SETTINGS below holds those choices; the report says
whether they are placeholders.

Departs from the paper: a 0.85M-parameter toy model on synthetic arithmetic, CPU-sized batches (16 prompts x 8
rollouts, up to 96 tokens) and a few hundred steps instead of 64 x 8 at up to 8192 tokens; learning rates far above
1e-6; kl_beta 0; test Pass@k is the unbiased estimator; maj@k averages disjoint blocks (study_eval.py). Evaluation
uses one set of sampling settings (the study's hyperparameters) for every model, whatever an arm trained with.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from softgrpo.checkpoint import checkpoint_dir, latest_checkpoint
from softgrpo.cli import RunInputs, prepare_run
from softgrpo.config import resolve_hyperparameters, rollout_config
from softgrpo.data import load_jsonl
from softgrpo.train import RunConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_eval import evaluate_test, write_json  # noqa: E402
from study_report import write_report  # noqa: E402
from tiny_rl_curve import parse_overrides  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "tiny"
GRADER = {"type": "math"}
MODES = {"soft": "soft_grpo", "discrete": "grpo"}  # inference mode -> the method whose rollout settings it uses

# PLACEHOLDERS until the lead engineer fills in values chosen on the VALIDATION split (never the test split): the
# learning rate of each arm is the best final validation Pass@1 of a sweep with these other settings. Set
# "chosen_on_validation" to True (and say which runs, in "source") when they are.
FULL_PRESET_SETTINGS = {
    "chosen_on_validation": True,
    "source": ("validation Pass@1 (200 problems x 4 samples) of discrete GRPO runs, 16 prompts x 8 rollouts, seed 1: "
               "2e-5 / 5e-5 / 2e-4 with two mini-batches (issue 9's calibration table) and 5e-5 / 1.5e-4 on-policy "
               "(docs/results.md); 5e-5 on-policy rose steadily, 1.5e-4 and above fell. The soft arms take the same "
               "rate: soft_grpo at 1e-4 fell too (calibration table); no per-arm sweep fitted the session"),
    "learning_rate": {"grpo": 5e-5, "soft_grpo": 5e-5, "soft_gaussian": 5e-5, "soft_grpo_rb": 5e-5},
    "batch_size": 16, "group_size": 8, "mini_batch_size": 16, "kl_beta": 0, "n_steps": 200, "eval_interval": 25,
    "eval_samples": 4,
}
ARM_METHODS = {"grpo": "grpo", "soft_grpo": "soft_grpo", "soft_gaussian": "soft_grpo", "soft_grpo_rb": "soft_grpo"}


def preset(name: str) -> dict:
    """The study spec of a built-in preset: "full" (4 arms x 3 seeds) or "ci" (2 arms x 1 seed x 2 tiny steps)."""
    s = FULL_PRESET_SETTINGS
    arms = [{"name": loss, "method": ARM_METHODS[loss], "hyperparameters": {"loss": loss, "learning_rate": lr}}
            for loss, lr in s["learning_rate"].items()]
    if name == "full":
        common = {k: s[k] for k in ("batch_size", "group_size", "mini_batch_size", "kl_beta", "n_steps",
                                    "eval_interval", "eval_samples")}
        return {"arms": arms, "seeds": [0, 1, 2], "hyperparameters": {**common, "checkpoint_interval": 25},
                "validation_problems": 200, "test_problems": 400, "test_samples": 32,
                "chosen_on_validation": s["chosen_on_validation"], "source": s["source"]}
    if name == "ci":
        tiny = {"batch_size": 2, "group_size": 2, "mini_batch_size": 2, "kl_beta": 0, "n_steps": 2,
                "eval_interval": 1, "eval_samples": 2, "checkpoint_interval": 1}
        return {"arms": arms[:2], "seeds": [0], "hyperparameters": tiny, "validation_problems": 2,
                "test_problems": 2, "test_samples": 4, "chosen_on_validation": False, "source": "CI-sized smoke run"}
    raise ValueError(f"--arms must be a preset (full, ci) or a JSON file, got {name!r}")


def load_spec(arms: str) -> dict:
    """--arms: a preset name or a JSON file (an object as preset() returns, or a bare list of arms)."""
    if not arms.endswith(".json"):
        return preset(arms)
    spec = json.loads(Path(arms).read_text())
    spec = {"arms": spec} if isinstance(spec, list) else spec
    for arm in spec["arms"]:
        if not isinstance(arm, dict) or not {"name", "method"} <= set(arm):
            raise ValueError(f"every arm needs a name and a method, got {arm!r}")
    names = [arm["name"] for arm in spec["arms"]]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    return {"seeds": [0], "hyperparameters": {}, "validation_problems": 200, "test_problems": 400,
            "test_samples": 32, "chosen_on_validation": False, "source": arms, **spec}


@dataclass
class Study:
    model: Path
    spec: dict  # preset() layout with the command line's overrides applied
    overrides: dict  # --set and --steps, for every arm

    def run_inputs(self, arm: dict, seed: int) -> RunInputs:
        """The validated inputs of one arm-seed (softgrpo.cli.prepare_run: model folder, data lines, hyperparameters,
        grader), with the validation split cut to the study's validation_problems."""
        raw = {**self.spec["hyperparameters"], **arm.get("hyperparameters", {}), **self.overrides}
        config = {"method": arm["method"], "seed": seed, "grader": GRADER, "hyperparameters": raw}
        inputs = prepare_run(self.model, self.model / "data/train.jsonl", self.model / "data/validation.jsonl", config)
        inputs.validation_examples = inputs.validation_examples[:self.spec["validation_problems"]]
        return inputs

    def eval_configs(self) -> dict:
        """{mode: RolloutConfig}: the study's sampling settings (no arm's), soft and discrete."""
        manifest = json.loads((self.model / "manifest.json").read_text())
        n_train = sum(1 for _ in (self.model / "data/train.jsonl").open())
        raw = {**self.spec["hyperparameters"], **self.overrides}
        configs = {}
        for mode, method in MODES.items():  # the method's own loss ("soft_grpo" / "grpo") picks the rollout mode
            hp = resolve_hyperparameters({**raw, "loss": method}, method, n_train, manifest,
                                         manifest.get("context_length"))
            configs[mode] = rollout_config(hp, method)
            assert configs[mode].mode == mode, (mode, configs[mode].mode)
        return configs


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def train_seconds(events: list[dict]) -> float:
    """Wall time of the kept work: per session (from one start event to the next), its last session_seconds."""
    total, last = 0.0, 0.0
    for event in events:
        if event["type"] == "start":
            total, last = total + last, 0.0
        last = max(last, event.get("session_seconds", 0.0))
    return total + last


def prune_checkpoints(run_dir: Path, keep_step: int) -> None:
    """Delete checkpoints older than keep_step (complete and written before it): only the latest is resumed from."""
    for folder in (run_dir / "checkpoints").glob("step-*"):
        if folder.name < checkpoint_dir(run_dir, keep_step).name:
            shutil.rmtree(folder, ignore_errors=True)


def run_identity(inputs: RunInputs) -> dict:
    return {"method": inputs.method, "seed": inputs.seed, "hyperparameters": inputs.hp.to_dict()}


def finished_run(inputs: RunInputs, run_dir: Path) -> dict | None:
    """The result.json of a finished run in run_dir, None if there is none; a ValueError if it is of another
    configuration (an unfinished one is checked by train() itself when it resumes)."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if {k: result[k] for k in ("method", "seed", "hyperparameters")} != json.loads(json.dumps(run_identity(inputs))):
        raise ValueError(f"{run_dir} holds a finished run with other hyperparameters/method/seed; use another --out")
    return result


def train_run(inputs: RunInputs, run_dir: Path, device: str = "cpu", on_event=None) -> dict:
    """Train one arm-seed into run_dir, continuing from its latest checkpoint; returns its result.json dict.

    A run with a result.json is finished and is not trained again. Every event goes to events.jsonl as it arrives;
    on resume the events of steps after the checkpoint are dropped first, so the log reads as one run.
    on_event(event): called after each event is logged (tests use it to interrupt a run).
    """
    identity = run_identity(inputs)
    log = run_dir / "events.jsonl"
    finished = finished_run(inputs, run_dir)
    if finished is not None:
        return finished
    checkpoint = latest_checkpoint(run_dir)
    resumed = json.loads((checkpoint / "state/state.json").read_text())["step"] if checkpoint else None
    kept = [e for e in read_events(log) if resumed is not None and e.get("step", 0) <= resumed]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_lines(log, kept)
    started = time.perf_counter()
    with log.open("a") as out:
        for event in train(inputs.model_folder, inputs.train_examples, inputs.hp, inputs.method, inputs.grader,
                           run_dir, validation_examples=inputs.validation_examples, seed=inputs.seed, resume=True,
                           run=RunConfig(device=device)):
            event = {k: v for k, v in event.items() if k != "history"}  # the metrics events hold it already
            event["session_seconds"] = round(time.perf_counter() - started, 3)
            out.write(json.dumps(event) + "\n")
            out.flush()
            if event["type"] == "checkpoint":
                prune_checkpoints(run_dir, event["step"])
            report_progress(run_dir, event)
            if on_event is not None:
                on_event(event)
    model_dir = checkpoint_dir(run_dir, inputs.hp.n_steps) / "model"
    result = {**identity, "model_dir": str(model_dir.relative_to(run_dir)), "train_seconds": train_seconds(read_events(log))}
    write_json(run_dir / "result.json", result)
    return result


def write_lines(path: Path, events: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(e) + "\n" for e in events))
    tmp.replace(path)


def report_progress(run_dir: Path, event: dict) -> None:
    name = f"{run_dir.parent.name}/{run_dir.name}"
    if event["type"] == "start":
        print(f"{name}: start (resumed from step {event['resumed_from_step']})", flush=True)
    elif event["type"] == "metrics":
        print(f"{name} step {event['step']}: reward {event['reward_mean']:.3f}, thinking "
              f"{event['thinking_length']:.1f}, {event['step_seconds']:.1f} s", flush=True)
    elif event["type"] == "eval":
        print(f"{name} step {event['step']}: validation pass@1 {event['pass_at_1']:.3f}", flush=True)


def plan(study: Study, out: Path) -> list[tuple[dict, int, RunInputs, Path]]:
    """Validate every run before the first starts: (arm, seed, inputs, run_dir) per arm x seed. Raises ValueError
    naming the problem (hyperparameters, data lines, a finished run of another configuration in --out)."""
    planned = []
    for arm in study.spec["arms"]:
        for seed in study.spec["seeds"]:
            inputs, run_dir = study.run_inputs(arm, seed), out / "runs" / arm["name"] / f"seed-{seed}"
            finished_run(inputs, run_dir)
            planned.append((arm, seed, inputs, run_dir))
    return planned


def run_study(study: Study, planned: list, out: Path, report: Path, device: str = "cpu") -> dict:
    """Train, evaluate and report every planned run (each part skipped when already done); returns the summary."""
    spec = study.spec
    configs = study.eval_configs()
    test = load_jsonl(study.model / "data/test.jsonl")[:spec["test_problems"]]
    grader = planned[0][2].grader

    def evaluate(model_folder: Path, key: str) -> dict:
        return {mode: evaluate_test(model_folder, test, cfg, spec["test_samples"], grader,
                                    out / "eval" / key / f"{mode}.json", device) for mode, cfg in configs.items()}

    base = evaluate(study.model, "base")
    runs = []
    for arm, seed, inputs, run_dir in planned:
        result = train_run(inputs, run_dir, device)
        runs.append({"arm": arm["name"], "seed": seed, "result": result, "events": read_events(run_dir / "events.jsonl"),
                     "test": evaluate(run_dir / result["model_dir"], f"{arm['name']}-seed-{seed}")})
        print(f"{arm['name']} seed {seed}: train {result['train_seconds']:.0f} s, test evaluation "
              f"{sum(t['seconds'] for t in runs[-1]['test'].values()):.0f} s", flush=True)
    meta = {key: spec[key] for key in ("seeds", "hyperparameters", "validation_problems", "test_problems",
                                       "test_samples", "chosen_on_validation", "source")}
    meta.update(arms=spec["arms"], overrides=study.overrides, eval_rollout={m: str(c) for m, c in configs.items()})
    return write_report(report, meta, [a["name"] for a in spec["arms"]], runs, base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(MODEL), help="base model folder with data/{train,validation,test}.jsonl")
    parser.add_argument("--out", default="runs/study", help="runs, checkpoints and evaluation caches")
    parser.add_argument("--arms", default="full", help="preset (full, ci) or a JSON file")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the preset's)")
    parser.add_argument("--report-only", action="store_true",
                        help="report the finished runs of this study (no training; unfinished runs are left out)")
    parser.add_argument("--only", nargs="+", help="run only these arms (e.g. to split a study over processes; "
                                                  "the report then covers these arms)")
    parser.add_argument("--steps", type=int, help="n_steps of every arm")
    parser.add_argument("--validation-problems", type=int, help="first N validation problems for the eval events")
    parser.add_argument("--test-problems", type=int, help="first N test problems (default: the preset's)")
    parser.add_argument("--test-samples", type=int, help="samples per test problem (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides for every arm: key=value")
    parser.add_argument("--report", help="tables and plots folder (default: <out>/report)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        spec = load_spec(args.arms)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: --arms: {err}", file=sys.stderr)
        return 2
    for key, value in (("seeds", args.seeds), ("validation_problems", args.validation_problems),
                       ("test_problems", args.test_problems), ("test_samples", args.test_samples)):
        if value is not None:
            spec[key] = value
    if args.only:
        unknown = sorted(set(args.only) - {arm["name"] for arm in spec["arms"]})
        if unknown:
            print(f"error: --only: no arm named {unknown[0]!r}", file=sys.stderr)
            return 2
        spec["arms"] = [arm for arm in spec["arms"] if arm["name"] in args.only]
    overrides = parse_overrides(args.set) | ({"n_steps": args.steps} if args.steps else {})
    out = Path(args.out)
    study = Study(Path(args.model), spec, overrides)
    try:
        planned = plan(study, out)
        if args.report_only:
            planned = [p for p in planned if finished_run(p[2], p[3]) is not None]
            if not planned:
                raise ValueError("--report-only: no finished run in --out")
        study.eval_configs()
    except (ValueError, KeyError) as err:  # bad hyperparameters or data lines, an arm without a name or method,
        print(f"error: {err}", file=sys.stderr)  # a finished run of another configuration in --out
        return 2
    summary = run_study(study, planned, out, Path(args.report) if args.report else out / "report", args.device)
    print(summary["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
