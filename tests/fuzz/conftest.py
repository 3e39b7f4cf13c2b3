"""Fixtures of the API fuzzer: the real Node server on a free loopback port with a temporary DATA_DIR, an API key
made by the project's own CLI, and a training file + fine-tune job created over HTTP (so that routes taking an id
are also fuzzed on ids that exist, not only on random ones that answer 404).

Run: gpu-worker/.venv/bin/python -m pytest tests/fuzz   (from the repository root; `npm run test:fuzz`)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TSX = ROOT / "node_modules" / ".bin" / "tsx"
WORKER_TOKEN = "fuzz-worker-token-" + "0" * 16


@dataclass
class Server:
    base_url: str
    api_key: str
    worker_token: str
    data_dir: str
    # Ids of real resources owned by the key's tenant, by path-parameter name.
    ids: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base_url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer /healthz within 90 s:\n{log_path.read_text()}")


def _create_api_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(TSX), "scripts/create-api-key.ts"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"create-api-key failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    tokens = out.stdout.split()
    if not tokens:
        raise RuntimeError(f"create-api-key printed no key:\n{out.stdout}\n{out.stderr}")
    return tokens[-1]


def _seed_resources(base_url: str, key: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {key}"}
    models = requests.get(f"{base_url}/v1/models", headers=auth, timeout=30)
    models.raise_for_status()
    model = models.json()["data"][0]["id"]
    lines = "".join(json.dumps({"prompt": f"What is {i} + {i}?", "answer": 2 * i}) + "\n" for i in range(8))
    file = requests.post(
        f"{base_url}/v1/files",
        headers=auth,
        data={"purpose": "fine-tune"},
        files={"file": ("train.jsonl", lines.encode(), "application/jsonl")},
        timeout=30,
    )
    file.raise_for_status()
    file_id = file.json()["id"]
    job = requests.post(
        f"{base_url}/v1/finetune",
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        json={"model": model, "training_file": file_id, "method": {"type": "soft_grpo"}, "grader": {"type": "math"}},
        timeout=30,
    )
    job.raise_for_status()
    job_id = job.json()["id"]
    # A second job, cancelled at once: its event stream (?stream=true) ends after the backlog instead of staying
    # open for the server's longest stream (minutes), which would stall the fuzzer.
    ended = requests.post(
        f"{base_url}/v1/finetune",
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        json={"model": model, "training_file": file_id},
        timeout=30,
    )
    ended.raise_for_status()
    ended_id = ended.json()["id"]
    requests.post(f"{base_url}/v1/finetune/{ended_id}/cancel", headers=auth, timeout=30).raise_for_status()
    return {"file_id": file_id, "job_id": job_id, "ended_job_id": ended_id, "model": model}


def _models_dir(tmp: Path) -> Path:
    """MODELS_DIR when set, else the repository's model folders (what `npm start` serves) when there are any; else
    one minimal model folder (a manifest, like tests/helpers/app.ts writes), so that job creation has a base model
    to name (/v1/reason then answers model_not_servable: there are no weights)."""
    if os.environ.get("MODELS_DIR"):
        return Path(os.environ["MODELS_DIR"])
    bundled = ROOT / "models"
    if any(bundled.glob("*/manifest.json")):
        return bundled
    folder = tmp / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    (folder / "manifest.json").write_text(
        json.dumps({"format": "softgrpo-model/1", "base": "tiny-arith", "step": 0, "context_length": 512})
    )
    return tmp / "models"


@pytest.fixture(scope="session")
def server() -> Server:
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-api-"))
    data_dir = str(tmp / "data")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATA_DIR": data_dir,
        "MODELS_DIR": str(_models_dir(tmp)),
        "WORKER_TOKEN": WORKER_TOKEN,
        "NODE_ENV": "test",
        # One key sends every case: per-tenant limits this high keep the cases reaching the handlers (a 429 is
        # declared on every /v1 operation, so it would pass the checks, but it would test nothing else).
        "TENANT_REQUESTS_PER_MINUTE": "1000000",
        "TENANT_ACTIVE_JOBS": "1000000",
    }
    log_path = tmp / "server.log"
    log = open(log_path, "w")
    # Own process group: tsx starts a node child, and teardown must stop both.
    proc = subprocess.Popen(
        [str(TSX), "src/entry/node.ts"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_until_up(base_url, proc, log_path)
        key = _create_api_key(env)
        ids = _seed_resources(base_url, key)
        yield Server(base_url=base_url, api_key=key, worker_token=WORKER_TOKEN, data_dir=data_dir, ids=ids)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        # An unhandled error (a 5xx) is logged by the server; show the log so that a failing run explains itself.
        text = log_path.read_text()
        if re.search(r"unhandled error|Error", text):
            print(f"\n--- server log ({log_path}) ---\n{text[-8000:]}")
        shutil.rmtree(tmp, ignore_errors=True)
