"""The worker against a real API: a Node server process (`tsx src/entry/node.ts`, real SQLite, real signed URLs) and
the worker loop in-process on a tiny random model, real PyTorch. Kill / lease-expiry recovery with a real SIGKILL
is in tests/e2e (vitest).

    cd gpu-worker && .venv/bin/python -m pytest tests/test_worker_protocol.py
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from softgrpo.api_client import WorkerApi
from softgrpo.worker import run_worker
from test_train import EXAMPLES, make_model_folder  # the tiny random Qwen2 folder of the training tests

REPO = Path(__file__).resolve().parents[2]
TSX = REPO / "node_modules" / ".bin" / "tsx"
WORKER_TOKEN = "wt-python-worker-tests"
TINY_HP = {"n_steps": 2, "batch_size": 2, "group_size": 2, "mini_batch_size": 1, "max_response_tokens": 8,
           "max_thinking_tokens": 4, "learning_rate": 1e-3, "checkpoint_interval": 1, "eval_interval": 1,
           "eval_samples": 2}

pytestmark = pytest.mark.skipif(not TSX.exists(), reason="needs node_modules (npm ci) for the API server")
torch.set_num_threads(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A real API server on a free port with one base model ("toy"); yields (base_url, user_client, data_dir)."""
    root = tmp_path_factory.mktemp("api")
    make_model_folder(root / "models" / "toy")
    env = {**os.environ, "PORT": str(free_port()), "HOST": "127.0.0.1", "DATA_DIR": str(root / "data"),
           "MODELS_DIR": str(root / "models"), "WORKER_TOKEN": WORKER_TOKEN,
           "LEASE_SECONDS": "6", "SWEEP_SECONDS": "1"}  # short lease: heartbeats every 2 s
    key = subprocess.run([str(TSX), "scripts/create-api-key.ts", "--tenant", "py-tests"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    server = subprocess.Popen([str(TSX), "src/entry/node.ts"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{env['PORT']}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"API server exited: {server.stdout.read()}")
        time.sleep(0.1)
    user = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)
    yield base, user, root / "data"
    user.close()
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=10)


def upload(user: httpx.Client, lines: list) -> str:
    content = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    response = user.post("/v1/files", data={"purpose": "fine-tune"},
                         files={"file": ("train.jsonl", content.encode(), "application/jsonl")})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def create_job(user: httpx.Client, training_file: str, method: str = "soft_grpo", hp: dict | None = None,
               **extra) -> dict:
    body = {"model": "toy", "training_file": training_file, "seed": 7, "grader": {"type": "exact"},
            "method": {"type": method, "hyperparameters": {**TINY_HP, **(hp or {})}}, **extra}
    response = user.post("/v1/finetune", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def work_one_job(base: str, tmp_path: Path) -> None:
    api, heartbeat_api = WorkerApi(base, WORKER_TOKEN), WorkerApi(base, WORKER_TOKEN, retries=1)
    try:
        run_worker(api, heartbeat_api, "pytest-worker", tmp_path / "work", once=True, poll_seconds=0.1,
                   device="cpu", export_onnx=False)
    finally:
        api.close()
        heartbeat_api.close()


def worker_events(data_dir: Path, job_id: str) -> list[dict]:
    """The worker's events as stored (the public event objects do not show the sequence number), in seq order."""
    with sqlite3.connect(f"file:{data_dir / 'api.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("select seq, type, data from job_events where job_id = ? and seq is not null order by seq",
                          (job_id,)).fetchall()
    return [{"seq": seq, "type": kind, "data": json.loads(data) if data else None} for seq, kind, data in rows]


def test_worker_trains_checkpoints_and_finishes_a_job(api, tmp_path):
    base, user, data_dir = api
    validation = upload(user, EXAMPLES[:2])
    job = create_job(user, upload(user, EXAMPLES), validation_file=validation)
    work_one_job(base, tmp_path)

    done = user.get(f"/v1/finetune/{job['id']}").json()
    assert done["status"] == "succeeded", done
    assert done["trained_steps"] == 2 and done["fine_tuned_model"].startswith("ft:toy:")
    events = worker_events(data_dir, job["id"])
    assert [e["seq"] for e in events] == list(range(len(events)))  # contiguous from 0
    assert events[0]["type"] == "hyperparameters" and events[0]["data"]["n_steps"] == 2
    assert events[0]["data"]["group_size"] == 2 and events[0]["data"]["loss"] == "soft_grpo"  # "auto" resolved
    assert [e["data"]["step"] for e in events if e["type"] == "metrics"] == [1, 2]
    assert [e["data"]["step"] for e in events if e["type"] == "eval"] == [0, 1, 2]
    # kl_beta auto (0.001 > 0): the KL to the reference policy reaches the API in every step's metrics (the dashboard's
    # KL chart reads it); the eval events carry what the dashboard's eval table shows
    assert events[0]["data"]["kl_beta"] > 0
    assert all(e["data"]["kl"] >= 0 for e in events if e["type"] == "metrics")
    assert all({"pass_at_1", "pass_at_2", "reward_mean", "n_prompts"} <= e["data"].keys()
               for e in events if e["type"] == "eval")

    checkpoints = user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"]
    assert sorted(c["step_number"] for c in checkpoints) == [1, 2]
    names = {f["name"] for f in checkpoints[0]["files"]}
    assert {"config.json", "model.safetensors", "manifest.json", "tokenizer.json", "state.json", "rng.pt",
            "dcp.metadata", "dcp__0_0.distcp", "worker_state.json"} <= names
    models = {m["id"] for m in user.get("/v1/models").json()["data"]}
    assert done["fine_tuned_model"] in models


def test_grpo_job_uses_discrete_rollouts(api, tmp_path):
    base, user, data_dir = api
    job = create_job(user, upload(user, EXAMPLES), method="grpo")
    work_one_job(base, tmp_path)
    assert user.get(f"/v1/finetune/{job['id']}").json()["status"] == "succeeded"
    events = worker_events(data_dir, job["id"])
    assert events[0]["data"]["loss"] == "grpo"
    assert all(e["data"]["soft_step_fraction"] == 0.0 for e in events if e["type"] == "metrics")


def test_dataset_lines_the_trainer_cannot_use_are_rejected_at_upload(api, tmp_path):
    base, user, data_dir = api
    # whitespace-only prompts passed the API's upload check (non-empty string) and failed the job in the worker; the
    # line rules are one file now (contract/dataset.json), so the upload answers 400 naming the first such line
    lines = [EXAMPLES[0], {"prompt": "   ", "answer": "1"}, EXAMPLES[1], {"prompt": "\t", "answer": "2"}]
    content = "".join(json.dumps(line) + "\n" for line in lines)
    response = user.post("/v1/files", data={"purpose": "fine-tune"},
                         files={"file": ("train.jsonl", content.encode(), "application/jsonl")})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert response.json()["error"]["message"].startswith("line 2: ")


def test_empty_queue_returns_without_work(api, tmp_path):
    base, _, _ = api
    started = time.monotonic()
    work_one_job(base, tmp_path)  # --once with nothing queued: claim answers 204
    assert time.monotonic() - started < 30
    assert not (tmp_path / "work" / "jobs").exists() or not any((tmp_path / "work" / "jobs").iterdir())


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker_thread(base: str, tmp_path: Path) -> threading.Thread:
    thread = threading.Thread(target=work_one_job, args=(base, tmp_path), daemon=True)
    thread.start()
    return thread


def metric_steps(data_dir: Path, job_id: str) -> list[int]:
    return [e["data"]["step"] for e in worker_events(data_dir, job_id) if e["type"] == "metrics"]


def test_pause_checkpoints_and_releases_then_resume_continues_to_the_last_step(api, tmp_path):
    base, user, data_dir = api
    n_steps = 20  # long enough that the pause lands mid-run
    job = create_job(user, upload(user, EXAMPLES), hp={"n_steps": n_steps, "checkpoint_interval": 100,
                                                       "eval_interval": 100})
    thread = start_worker_thread(base, tmp_path)
    wait_for(lambda: metric_steps(data_dir, job["id"]), what="the first step")
    assert user.post(f"/v1/finetune/{job['id']}/pause").json()["status"] == "pausing"
    thread.join(timeout=120)
    paused = user.get(f"/v1/finetune/{job['id']}").json()
    assert paused["status"] == "paused", paused
    [checkpoint] = user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"]
    paused_at = checkpoint["step_number"]
    assert 1 <= paused_at < n_steps and metric_steps(data_dir, job["id"]) == list(range(1, paused_at + 1))

    assert user.post(f"/v1/finetune/{job['id']}/resume").json()["status"] == "queued"
    work_one_job(base, tmp_path)
    done = user.get(f"/v1/finetune/{job['id']}").json()
    assert done["status"] == "succeeded" and done["trained_steps"] == n_steps
    steps = sorted(c["step_number"] for c in user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"])
    assert steps == [paused_at, n_steps]
    events = worker_events(data_dir, job["id"])
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert metric_steps(data_dir, job["id"]) == list(range(1, n_steps + 1))  # each step once, none lost
    assert [e["type"] for e in events].count("hyperparameters") == 1


def test_cancel_stops_the_worker_without_uploading(api, tmp_path):
    base, user, data_dir = api
    job = create_job(user, upload(user, EXAMPLES), hp={"n_steps": 50, "checkpoint_interval": 100})
    thread = start_worker_thread(base, tmp_path)
    wait_for(lambda: metric_steps(data_dir, job["id"]), what="the first step")
    assert user.post(f"/v1/finetune/{job['id']}/cancel").json()["status"] == "cancelled"
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert user.get(f"/v1/finetune/{job['id']}").json()["status"] == "cancelled"
    assert user.get(f"/v1/finetune/{job['id']}/checkpoints").json()["data"] == []
    assert len(metric_steps(data_dir, job["id"])) < 50
