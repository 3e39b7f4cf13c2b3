"""The worker client's transient-failure policy over real HTTP (a local http.server playing the API):
409 idempotency_request_in_progress is waited out with the same Idempotency-Key, as retry-after says (the API died in
the middle of the first try and releases its reservation at start-up or by age); a checkpoint PUT answered 409
blob_exists counts as uploaded; other 409s still raise at once.

    cd gpu-worker && .venv/bin/python -m pytest tests/test_worker_api_retries.py
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from softgrpo.api_client import ApiError, LeaseLost, WorkerApi


class Script:
    """Answers each request with the next scripted (status, body, headers) and records what it received."""

    def __init__(self, answers):
        self.answers, self.seen = list(answers), []


def serve(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            script.seen.append((self.command, self.path, self.headers.get("idempotency-key")))
            status, body, headers = script.answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def api_with():
    servers = []

    def make(answers, **kw):
        script = Script(answers)
        server = serve(script)
        servers.append(server)
        return WorkerApi(f"http://127.0.0.1:{server.server_address[1]}", "wt", backoff=0.01, **kw), script

    yield make
    for s in servers:
        s.shutdown()


IN_PROGRESS = (409, {"error": {"code": "idempotency_request_in_progress", "message": "still running"}}, {"retry-after": "0"})


def test_waits_out_an_in_progress_reservation_with_the_same_idempotency_key(api_with):
    api, script = api_with([IN_PROGRESS, IN_PROGRESS, (200, {"action": "continue", "status": "running"}, {})])
    assert api.heartbeat("ftjob-1", "lease")["action"] == "continue"
    keys = {key for _, _, key in script.seen}
    assert len(script.seen) == 3 and len(keys) == 1 and None not in keys


def test_gives_up_on_an_in_progress_reservation_after_its_wait_budget(api_with):
    api, script = api_with([IN_PROGRESS] * 3, in_progress_wait=0.0)
    with pytest.raises(ApiError) as err:
        api.heartbeat("ftjob-1", "lease")
    assert err.value.code == "idempotency_request_in_progress" and len(script.seen) == 1


def test_lease_lost_still_raises_at_once(api_with):
    api, script = api_with([(409, {"error": {"code": "lease_lost", "message": "gone"}}, {})])
    with pytest.raises(LeaseLost):
        api.heartbeat("ftjob-1", "lease")
    assert len(script.seen) == 1


def test_a_put_to_a_blob_written_by_an_earlier_try_counts_as_uploaded(api_with, tmp_path):
    api, script = api_with([(409, {"error": {"code": "blob_exists", "message": "write-once"}}, {})])
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    url = api.base_url + "/blobs/checkpoints/ftjob-1/step-1/attempt-1/model.onnx?method=PUT"
    assert api.put_blob(url, path) == {"exists": True}
    assert script.seen[0][0] == "PUT"


def test_a_refused_upload_url_raises(api_with, tmp_path):
    api, _ = api_with([(403, {"error": {"code": "upload_closed", "message": "job is no longer running"}}, {})])
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    with pytest.raises(ApiError) as err:
        api.put_blob(api.base_url + "/blobs/x?method=PUT", path)
    assert err.value.code == "upload_closed"
