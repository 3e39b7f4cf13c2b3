"""The Python SDK against the real Node API (conftest.py): upload, jobs (create / list / pause / resume / cancel),
events paged and streamed, waiting, models, the error envelope with the request id, Idempotency-Keys and retries.

Run: PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 gpu-worker/.venv/bin/python -m pytest sdk/python/tests -q   (repository root)
"""

from __future__ import annotations

import io

import httpx
import pytest

from soft_reason import SoftReason, SoftReasonError, retry_after_seconds

TRAIN = b'{"prompt": "What is 2+3?", "answer": 5}\n{"messages": [{"role": "user", "content": "What is 7*6?"}], "answer": "42"}\n'


@pytest.fixture()
def api(server):
    with SoftReason(server.api_key, server.base_url) as client:
        yield client


def test_uploads_from_a_path_and_bytes_and_lists_files(api, tmp_path):
    path = tmp_path / "arith.jsonl"
    path.write_bytes(TRAIN)
    a = api.upload_file(path)
    b = api.upload_file(TRAIN, filename="b.jsonl")
    assert (a["filename"], a["examples"], a["bytes"]) == ("arith.jsonl", 2, len(TRAIN))
    assert b["sha256"] == a["sha256"]
    ids = {f["id"] for f in api.list_files(limit=100)["data"]}
    assert {a["id"], b["id"]} <= ids
    assert api.get_file(a["id"])["id"] == a["id"]


def test_bad_line_raises_the_envelope_with_the_request_id(server):
    with SoftReason(server.api_key, server.base_url, headers={"x-request-id": "req-py-sdk-0001"}) as api:
        with pytest.raises(SoftReasonError) as info:
            api.upload_file(io.BytesIO(b'{"prompt": "no answer"}\n'), filename="bad.jsonl")
    e = info.value
    assert e.status == 400
    assert "line 1" in e.message
    assert e.request_id == "req-py-sdk-0001"
    with pytest.raises(SoftReasonError) as info:
        SoftReason("sk-wrong", server.base_url).list_models()
    assert info.value.status == 401 and info.value.request_id


def test_job_lifecycle_events_and_wait(api):
    file = api.upload_file(TRAIN)
    job = api.create_job({"model": "tiny-arith", "training_file": file["id"], "method": {"type": "grpo", "hyperparameters": {"n_steps": 2}}, "suffix": "py"})
    assert job["status"] == "queued"
    assert job["id"] in {j["id"] for j in api.list_jobs()["data"]}
    assert api.pause_job(job["id"])["status"] == "paused"
    assert api.resume_job(job["id"])["status"] == "queued"
    assert api.cancel_job(job["id"])["status"] == "cancelled"
    with pytest.raises(SoftReasonError) as info:
        api.resume_job(job["id"])
    assert (info.value.status, info.value.code) == (409, "invalid_job_status")
    assert api.wait_for_job(job["id"], poll=0.01, timeout=5)["status"] == "cancelled"
    paged = api.events(job["id"], limit=100, order="asc")["data"]
    assert api.events(job["id"], limit=100)["data"] == paged[::-1]  # newest first by default, as OpenAI
    streamed = list(api.stream_events(job["id"]))
    assert streamed == paged and len(paged) >= 2
    assert list(api.stream_events(job["id"], after=paged[0]["id"])) == paged[1:]
    assert api.checkpoints(job["id"])["data"] == []


def test_same_idempotency_key_same_job_and_a_fresh_key_per_call(api):
    file = api.upload_file(TRAIN)
    body = {"model": "tiny-arith", "training_file": file["id"]}
    a = api.create_job(body, idempotency_key="py-key-1")
    assert api.create_job(body, idempotency_key="py-key-1")["id"] == a["id"]
    assert len({a["id"], api.create_job(body)["id"], api.create_job(body)["id"]}) == 3


def test_retries_503_with_the_same_idempotency_key(server):
    sent: list[httpx.Request] = []
    real = httpx.HTTPTransport()

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx.Response(503, headers={"retry-after": "0"}, json={"error": {"message": "busy", "type": "server_error", "param": None, "code": "busy"}})
        return real.handle_request(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with SoftReason(server.api_key, server.base_url, http=http) as api:
        file = api.upload_file(TRAIN)
    assert len(sent) == 2  # the 503, then the upload that the server stored
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"]
    assert file["examples"] == 2
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds("later") is None


def test_models(api):
    models = api.list_models()["data"]
    assert any(m["id"] == "tiny-arith" and m["kind"] == "base" for m in models)
    with pytest.raises(SoftReasonError) as info:
        api.get_model("no-such-model")
    assert info.value.status == 404


def test_reason_and_stream_agree(api, server):
    if not server.servable:
        pytest.skip("no servable bundled model (models/*/manifest.json with model.onnx)")
    body = {"model": "tiny-arith", "prompt": "Tom has 4 cars and buys 5 more. How many cars?", "n": 2, "seed": 3, "max_tokens": 32}
    result = api.reason(body)
    chunks = list(api.reason_stream(body))
    assert chunks[-1]["object"] == "reason.vote"
    assert chunks[-1]["aggregate"] == result["aggregate"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1] if c["choices"][0]["index"] == 0)
    assert text == result["choices"][0]["answer"]


def test_reason_soft_thoughts_lists_each_thinking_steps_mixture(api, server):
    if not server.servable:
        pytest.skip("no servable bundled model (models/*/manifest.json with model.onnx)")
    body = {"model": "tiny-arith", "prompt": "Tom has 4 cars and buys 5 more. How many cars?", "n": 1, "seed": 3, "max_tokens": 32}
    assert "soft_thoughts" not in api.reason(body)["choices"][0]
    choice = api.reason({**body, "soft_thoughts": True})["choices"][0]
    steps = choice["soft_thoughts"]
    assert len(steps) == choice["usage"]["reasoning_tokens"] - (0 if choice["thinking_end"] is None else 1)
    for step in steps:
        assert len(step["ids"]) == len(step["tokens"]) == len(step["weights"]) == 5  # max_topk default
        assert abs(sum(step["weights"]) - 1) < 1e-6
    heaviest = "".join(s["tokens"][max(range(5), key=lambda j: s["weights"][j])] for s in steps)
    assert heaviest == choice["reasoning"]


def test_stream_events_resumes_after_the_last_event_when_a_stream_ends_early(api, server):
    """The server ends long streams (Config.sse.maxStreamMs); here the first stream is cut after its first event
    and the SDK must reconnect with after=<that event's id>, yielding every event exactly once."""
    file = api.upload_file(TRAIN)
    job = api.create_job({"model": "tiny-arith", "training_file": file["id"]})
    api.cancel_job(job["id"])
    real = httpx.HTTPTransport()
    streams: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("stream") != "true":
            return real.handle_request(request)
        streams.append(request)
        res = real.handle_request(request)
        res.read()
        if len(streams) > 1:
            return httpx.Response(res.status_code, headers=res.headers, content=res.content)
        first = res.text.split("\n\n", 1)[0] + "\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=first.encode())

    with SoftReason(server.api_key, server.base_url, http=httpx.Client(transport=httpx.MockTransport(handler))) as cut:
        streamed = list(cut.stream_events(job["id"]))
    paged = api.events(job["id"], limit=100, order="asc")["data"]
    assert streamed == paged
    assert len(streams) == 2
    assert "after" not in streams[0].url.params
    assert streams[1].url.params["after"] == paged[0]["id"]
