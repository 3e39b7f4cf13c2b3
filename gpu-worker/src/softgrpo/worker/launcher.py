"""Where a job's training runs: in the worker's process on one device, under torchrun on more.

    start_training(run, resumed) -> an event source with the generator protocol: next / send("stop") / close()

devices == 1: softgrpo.train.train itself, in this process (as the worker always did).
devices  > 1: `torchrun --standalone --nproc_per_node=N -m softgrpo.rank_entry <out>/run.json` in a new session.
              Rank 0 appends its events to <out>/events.jsonl; this relay reads them and yields them, so the worker
              posts them and keeps heartbeating in its own process. send("stop") (a pause) writes <out>/control,
              which rank 0 obeys at the next step end. A cancel or a lost lease is noticed while waiting for
              events (the heartbeat's check), not only between them. close() ends every process: the relay
              closes on done, pause, cancel, a lost lease, a failure or the worker's own exit, and then
                1. SIGTERM to torchrun (its agent stops the ranks), SIGKILL after a grace period;
                2. any rank still alive (each wrote <out>/ranks/<r>.pid) is killed by its pid.
              torchrun and the ranks also die with their parent (PR_SET_PDEATHSIG), so a worker killed with SIGKILL
              leaves no training process behind.
A rank that dies (SIGKILL, the OOM killer) makes torchrun end the others and exit non-zero: the relay raises a
retryable JobFailure, the API re-queues the job and the next attempt resumes from the last checkpoint. A rank whose
training raised reports the exception (<out>/ranks/<r>.error); the failure is then retryable only if the error is.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from softgrpo.rank_entry import RUN_FILE_FORMAT, die_with_parent
from softgrpo.worker.failures import JobFailure, crash_failure
from softgrpo.worker.lease import log

GRACE_SECONDS = 15.0  # SIGTERM -> SIGKILL
POLL_SECONDS = 0.1


def start_training(run, resumed: bool) -> Iterator[dict]:
    """The training event source of a JobRun (worker.job_run.JobRun)."""
    from softgrpo.rewards import make_grader
    from softgrpo.train import RunConfig, train

    config = RunConfig(device=run.options.device, backend=run.options.backend, rollout_engine=run.rollout_engine,
                       export_onnx=run.options.export_onnx, bf16=run.options.bf16,
                       gradient_checkpointing=run.options.gradient_checkpointing)
    if run.devices == 1:
        return train(run.base_dir, run.train_examples, run.hp, run.method, make_grader(run.job["grader"]),
                     run.out_dir, validation_examples=run.validation, seed=int(run.job["seed"]), resume=resumed,
                     job_id=run.job_id, run=config)
    run_file = write_run_file(run.out_dir, base_dir=run.base_dir, train_examples=run.train_examples,
                              validation=run.validation, hp=run.hp.to_dict(), method=run.method,
                              grader=run.job["grader"], seed=int(run.job["seed"]), resume=resumed,
                              job_id=run.job_id, config=config, threads=run.options.threads)
    return torchrun_training(run_file, run.devices, run.out_dir, check=run.heartbeat.check)


def write_run_file(out_dir: Path, *, base_dir: Path, train_examples: list[dict], validation: list[dict] | None,
                   hp: dict, method: str, grader: dict, seed: int, resume: bool, job_id: str | None, config,
                   threads: int | None = None) -> Path:
    """<out>/run.json for softgrpo.rank_entry (examples as JSONL files next to it)."""
    from dataclasses import asdict

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run-train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in train_examples))
    if validation:
        (out_dir / "run-validation.jsonl").write_text("".join(json.dumps(e) + "\n" for e in validation))
    spec = {"format": RUN_FILE_FORMAT, "model_folder": str(base_dir),
            "train_examples": str(out_dir / "run-train.jsonl"),
            "validation_examples": str(out_dir / "run-validation.jsonl") if validation else None,
            "hyperparameters": hp, "method": method, "grader": grader, "out_dir": str(out_dir), "seed": seed,
            "resume": resume, "job_id": job_id, "run": asdict(config), "threads": threads}
    path = out_dir / "run.json"
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def torchrun_command(run_file: Path, devices: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
            "--max_restarts=0", "-m", "softgrpo.rank_entry", str(run_file)]


def torchrun_training(run_file: Path, devices: int, out_dir: Path, check=None,
                      command: list[str] | None = None) -> Iterator[dict]:
    """Launch the ranks and relay rank 0's events (module docstring). check: called while waiting for the next event
    (the heartbeat's check): whatever it raises (StopJob on a cancel or a lost lease) ends the ranks at once, even in
    the middle of a step or of torchrun's start. command: torchrun_command(run_file, devices) unless given (a test's
    wrapper of rank_entry)."""
    events_path, control = out_dir / "events.jsonl", out_dir / "control"
    for stale in (events_path, control):
        stale.unlink(missing_ok=True)
    for stale in (out_dir / "ranks").glob("*") if (out_dir / "ranks").is_dir() else []:
        stale.unlink()
    with (out_dir / "torchrun.log").open("ab") as log_file:
        process = subprocess.Popen(command or torchrun_command(run_file, devices), stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=die_with_parent)
    log(f"torchrun pid {process.pid}: {devices} ranks ({out_dir / 'torchrun.log'})")
    last = None
    try:
        with _follow(events_path, process, check) as lines:
            for line in lines:
                event = json.loads(line)
                last = event["type"]
                if last == "exit":
                    break
                command = yield event
                if command == "stop":
                    control.write_text("stop")
        if last != "exit":
            raise _rank_failure(out_dir, process, devices)
    finally:
        end_ranks(process, out_dir, wait=GRACE_SECONDS * 4 if last in ("done", "stopped", "exit") else 0.0)


class _follow:
    """Lines appended to a file by another process, until that process exits and the file is drained."""

    def __init__(self, path: Path, process: subprocess.Popen, check=None):
        self.path, self.process, self.handle, self.buffer = path, process, None, ""
        self.check = check or (lambda: None)

    def __enter__(self):
        return self._lines()

    def __exit__(self, *exc):
        if self.handle:
            self.handle.close()

    def _lines(self):
        while True:
            if self.handle is None and self.path.is_file():
                self.handle = self.path.open()
            chunk = self.handle.readline() if self.handle else ""
            if chunk:
                self.buffer += chunk
                if self.buffer.endswith("\n"):
                    line, self.buffer = self.buffer, ""
                    yield line
                continue
            if self.process.poll() is not None:  # exited: read what is left once more, then stop
                rest = self.handle.read() if self.handle else (self.path.read_text() if self.path.is_file() else "")
                for line in (self.buffer + rest).splitlines():
                    if line.strip():
                        yield line
                return
            self.check()
            time.sleep(POLL_SECONDS)


def _rank_failure(out_dir: Path, process: subprocess.Popen, devices: int) -> JobFailure:
    """Why the ranks ended without their exit line. A rank that left no error report died from outside (SIGKILL, the
    OOM killer): the others then fail in their next collective, so their reports are consequences, and the attempt
    is retried. When every rank reported, the first report that is not a lost peer says what went wrong."""
    code = process.wait()
    errors = {int(f.stem): json.loads(f.read_text()) for f in (out_dir / "ranks").glob("*.error")}
    silent = sorted(set(range(devices)) - set(errors))
    if silent:
        return JobFailure("training_error", f"A training process ended without finishing (torchrun exit code {code}; "
                          f"rank {', '.join(map(str, silent))} left no error); the job is retried from its last "
                          f"checkpoint. {_tail(out_dir / 'torchrun.log')}", retryable=True)
    causes = [e for _, e in sorted(errors.items()) if not _lost_peer(e["message"])] or [errors[min(errors)]]
    failure = crash_failure(RuntimeError(f"{causes[0]['error']}: {causes[0]['message']}"))
    return JobFailure(failure.code, failure.message, failure.param,
                      failure.retryable or all(_lost_peer(e["message"]) for e in errors.values()))


def _lost_peer(message: str) -> bool:
    """A collective that failed because another rank went away (gloo / NCCL wording)."""
    return any(s in message for s in ("Connection reset by peer", "Connection closed by peer", "NCCL", "gloo"))


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-1500:]


def end_ranks(process: subprocess.Popen, out_dir: Path, wait: float = 0.0) -> None:
    """End torchrun and every rank (see the module docstring); returns when none is left."""
    if wait:
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for pid in rank_pids(out_dir):
        _kill_if_ours(pid, out_dir)


def rank_pids(out_dir: Path) -> list[int]:
    folder = out_dir / "ranks"
    return [int(p.read_text()) for p in sorted(folder.glob("*.pid"))] if folder.is_dir() else []


def _kill_if_ours(pid: int, out_dir: Path) -> None:
    """SIGKILL a rank still alive, if the pid is still one of this run's ranks (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return  # gone
    if str(out_dir / "run.json") in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                return
            time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True
