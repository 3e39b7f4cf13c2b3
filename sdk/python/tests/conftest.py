"""The real Node API (src/entry/node.ts) on a free loopback port with a temporary DATA_DIR and an API key made by
the project's own script, for the Python SDK's live tests. MODELS_DIR is the bundled models/ when a model there has
a manifest.json (then /v1/reason is served by the onnx engine), else one minimal model folder (jobs can name a base
model; /v1/reason cannot run)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
TSX = ROOT / "node_modules" / ".bin" / "tsx"


@dataclass
class Server:
    base_url: str
    api_key: str
    servable: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _models_dir(tmp: Path) -> tuple[Path, bool]:
    bundled = ROOT / "models"
    if any((p.parent / "model.onnx").exists() for p in bundled.glob("*/manifest.json")):
        return bundled, True
    folder = tmp / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    (folder / "manifest.json").write_text(json.dumps({"format": "softgrpo-model/1", "base": "tiny-arith", "step": 0, "context_length": 512}))
    return tmp / "models", False


@pytest.fixture(scope="session")
def server():
    tmp = Path(tempfile.mkdtemp(prefix="py-sdk-"))
    port = _free_port()
    models, servable = _models_dir(tmp)
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "DATA_DIR": str(tmp / "data"), "MODELS_DIR": str(models),
           "WORKER_TOKEN": "py-sdk-worker-token-0000000000", "NODE_ENV": "test"}
    key = subprocess.run([str(TSX), "scripts/create-api-key.ts", "--tenant", "py-sdk"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.split()[-1]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([str(TSX), "src/entry/node.ts"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start:\n" + (tmp / "server.log").read_text()
            time.sleep(0.2)
        yield Server(base_url=base_url, api_key=api_key, servable=servable)
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
        shutil.rmtree(tmp, ignore_errors=True)
