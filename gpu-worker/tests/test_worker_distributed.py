"""A 2-device job through the real API: the worker claims it as a 2-device worker, runs it under torchrun (2 CPU
ranks, gloo, FSDP2), relays rank 0's events and checkpoints, and ends every rank when the run ends; a rank killed
with SIGKILL makes the attempt fail as retryable, the job goes back to the queue, and the next attempt resumes from
the last registered checkpoint. No training process outlives either attempt.

The API is a Node server process on real SQLite (the fixture of test_worker_protocol); the worker loop runs in this
process, the ranks are real torchrun processes.

    cd gpu-worker && .venv/bin/python -m pytest tests/test_worker_distributed.py
"""
import os
import signal
import threading
from pathlib import Path

import pytest

from test_train import EXAMPLES
from test_worker_protocol import api  # noqa: F401  (the fixture: a Node API server process)
from test_worker_protocol import WORKER_TOKEN, create_job, metric_steps, upload, wait_for, worker_events
from softgrpo.api_client import WorkerApi
from softgrpo.worker import run_worker

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
TWO_DEVICES = {"resources": {"devices": 2}}


def work_one_job(base: str, work: Path, devices: int) -> None:
    client, heartbeat_client = WorkerApi(base, WORKER_TOKEN), WorkerApi(base, WORKER_TOKEN, retries=1)
    try:
        run_worker(client, heartbeat_client, f"pytest-{devices}-devices", work, once=True, poll_seconds=0.1,
                   device="cpu", export_onnx=False, devices=devices)
    finally:
        client.close()
        heartbeat_client.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1]
    except (OSError, IndexError):
        return False
    return not state.startswith("Z")


def training_processes() -> set[int]:
    """Every live process running softgrpo.rank_entry or torchrun on it (any job of this machine)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"softgrpo.rank_entry" in cmdline and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def test_a_two_device_job_survives_a_killed_rank_and_succeeds_resuming_from_its_last_checkpoint(api, tmp_path):
    base, user, data_dir = api
    before = training_processes()
    n_steps = 8
    job = create_job(user, upload(user, EXAMPLES), hp={"n_steps": n_steps, "checkpoint_interval": 2,
                                                       "eval_interval": 100, "group_size": 2, "mini_batch_size": 1},
                     validation_file=upload(user, EXAMPLES[:2]), **TWO_DEVICES)
    assert job["resources"] == {"devices": 2}
    work = tmp_path / "work"
    work_one_job(base, work, devices=1)  # a 1-device worker does not take it
    assert user.get(f"/v1/finetune/{job['id']}").json()["status"] == "queued"

    # attempt 1 under torchrun; SIGKILL rank 1 once a checkpoint is registered
    thread = threading.Thread(target=work_one_job, args=(base, work, 2), daemon=True)
    thread.start()
    ranks = work / "jobs" / job["id"] / "attempt-1" / "ranks"
    wait_for(lambda: user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"], what="a checkpoint")
    pids = {int(p.stem): int(p.read_text()) for p in ranks.glob("*.pid")}
    assert sorted(pids) == [0, 1]
    os.kill(pids[1], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert not any(alive(pid) for pid in pids.values())  # rank 0 ended with it
    assert training_processes() <= before  # and torchrun: no training process is left

    retried = user.get(f"/v1/finetune/{job['id']}").json()
    assert retried["status"] == "queued" and retried["attempts"] == 1, retried
    listed = user.get(f"/v1/finetune/{job['id']}/events", params={"limit": 100}).json()["data"]
    messages = [e["message"] for e in listed]
    assert any(m.startswith("Attempt 1 failed (A training process ended without finishing (torchrun exit code")
               and m.endswith("job re-queued.") for m in messages), messages
    last = max(c["step_number"] for c in user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"])
    assert last < n_steps

    # attempt 2: resumes from that checkpoint, on 2 ranks again, to succeeded
    work_one_job(base, work, devices=2)
    done = user.get(f"/v1/finetune/{job['id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["trained_steps"] == n_steps, done
    public = user.get(f"/v1/finetune/{job['id']}/events", params={"limit": 100, "order": "asc"}).json()["data"]
    assert any(f"attempt 2 from checkpoint step {last}" in e["message"] for e in public)
    events = worker_events(data_dir, job["id"])
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert metric_steps(data_dir, job["id"]) == list(range(1, n_steps + 1))  # each step once, none lost
    start = next(e for e in events if e["type"] == "message" and e["data"].get("world_size"))
    assert start["data"]["world_size"] == 2
    assert [e["data"]["step"] for e in events if e["type"] == "eval"] == [0, n_steps]  # evaluation on rank 0
    final = max(user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"], key=lambda c: c["step_number"])
    names = {f["name"] for f in final["files"]}
    assert {"dcp.metadata", "dcp__0_0.distcp", "dcp__1_0.distcp", "model.safetensors"} <= names  # a shard per rank
    assert training_processes() <= before
