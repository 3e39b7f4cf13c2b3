"""One rank of a multi-device training run: what the worker's launcher starts under torchrun.

    torchrun --standalone --nproc_per_node=N -m softgrpo.rank_entry <out>/run.json

run.json (written by softgrpo.worker.launcher.write_run_file) holds everything softgrpo.train.train takes: the base
model folder, the training / validation examples, the resolved hyperparameters, method, grader, seed, resume flag,
job id and the RunConfig. Every rank runs the train generator; rank 0 is the run's voice:

    <out>/events.jsonl    rank 0 appends every event as one JSON line (flushed), then {"type": "exit"} at the end
    <out>/control         the worker writes "stop" there (pause); rank 0 sends it into train at the next step end,
                          and train hands it to every rank
    <out>/ranks/<r>.pid   each rank's process id (the launcher and the tests check that none outlives the run)
    <out>/ranks/<r>.error a rank whose training raised: the exception, as {"error", "message"} JSON

A rank that dies (SIGKILL, out of memory) leaves no error file: torchrun ends the other ranks and exits non-zero,
and the launcher reports that.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

RUN_FILE_FORMAT = "softgrpo-run/1"


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (the worker for torchrun, torchrun for a rank), so a
    killed parent leaves no training process behind. A no-op where prctl is missing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def read_run_file(path: Path) -> dict:
    run = json.loads(path.read_text())
    if run.get("format") != RUN_FILE_FORMAT:
        raise ValueError(f"{path}: format {run.get('format')!r} is not {RUN_FILE_FORMAT!r}")
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # torchrun died before the request took hold
        return 1
    run_file = Path(argv[0])
    spec = read_run_file(run_file)
    out_dir = Path(spec["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    ranks_dir = out_dir / "ranks"
    ranks_dir.mkdir(parents=True, exist_ok=True)
    (ranks_dir / f"{rank}.pid").write_text(str(os.getpid()))
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    try:
        return run_rank(spec, out_dir, rank)
    except Exception as err:
        (ranks_dir / f"{rank}.error").write_text(json.dumps({"error": type(err).__name__, "message": str(err),
                                                             "traceback": traceback.format_exc()[-4000:]}))
        raise


def run_rank(spec: dict, out_dir: Path, rank: int) -> int:
    from softgrpo.config import Hyperparameters
    from softgrpo.distributed import destroy
    from softgrpo.rewards import make_grader
    from softgrpo.train import RunConfig, train

    examples = [json.loads(line) for line in Path(spec["train_examples"]).read_text().splitlines() if line]
    validation = None
    if spec.get("validation_examples"):
        validation = [json.loads(line) for line in Path(spec["validation_examples"]).read_text().splitlines() if line]
    events = train(spec["model_folder"], examples, Hyperparameters(**spec["hyperparameters"]), spec["method"],
                   make_grader(spec["grader"]), out_dir, validation_examples=validation, seed=int(spec["seed"]),
                   resume=bool(spec["resume"]), job_id=spec.get("job_id"), run=RunConfig(**spec["run"]))
    control = out_dir / "control"
    sink = (out_dir / "events.jsonl").open("a") if rank == 0 else None
    command = None
    try:
        while True:
            try:
                event = events.send(command)
            except StopIteration:
                break
            command = None
            if sink is not None:
                sink.write(json.dumps(event) + "\n")
                sink.flush()
                if event["type"] in ("metrics", "eval") and control.is_file() and control.read_text().strip() == "stop":
                    command = "stop"
        if sink is not None:
            sink.write(json.dumps({"type": "exit"}) + "\n")
    finally:
        events.close()
        if sink is not None:
            sink.close()
        destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
