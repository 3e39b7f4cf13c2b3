"""`serve` as a serving replica: token-level NDJSON streaming whose deltas add up to the final texts, cancellation
when the client goes away, models loaded from signed URLs into an LRU cache within a memory budget. A real server on
a free port and a real HTTP file server for the model files; the tiny random model of test_serve."""
import hashlib
import http.client
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from softgrpo.model_store import ModelStore, model_bytes
from softgrpo.serve import load_served_model, make_server
from softgrpo.text_stream import SampleTextStream
from test_serve import CONTEXT, model_folder, request_body  # noqa: F401  (fixture)

torch.set_num_threads(1)


def _start(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def files_server(model_folder):  # noqa: F811
    """The model folder over plain HTTP (what signed GET URLs are, to the replica)."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    srv = _start(ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(model_folder))))
    yield srv
    srv.shutdown()


def files_spec(folder, srv, key="tiny@1", corrupt=None):
    files = []
    for name in ("config.json", "manifest.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        data = (folder / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest() if name != corrupt else "0" * 64
        files.append({"name": name, "bytes": len(data), "sha256": sha,
                      "url": f"http://127.0.0.1:{srv.server_address[1]}/{name}"})
    return {"key": key, "files": files}


def stream_lines(port, body, token=None, keep=None):
    """POST a streamed generate; returns (status, [parsed lines]); stops reading after `keep` lines."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
    conn.request("POST", "/v1/generate", json.dumps({**body, "stream": True}), headers)
    res = conn.getresponse()
    if res.status != 200:
        return res.status, [json.loads(res.read())]
    lines = []
    while keep is None or len(lines) < keep:
        line = res.readline()
        if not line:
            break
        lines.append(json.loads(line))
        if lines[-1]["type"] in ("result", "error"):
            break
    conn.close()
    return res.status, lines


@pytest.fixture(scope="module")
def replica(model_folder, tmp_path_factory):  # noqa: F811
    store = ModelStore(lambda folder: load_served_model(folder, "cpu"), budget_bytes=1 << 30,
                       cache_dir=tmp_path_factory.mktemp("cache"), pinned={"tiny": load_served_model(model_folder, "cpu")})
    srv = _start(make_server({}, "127.0.0.1", 0, store=store))
    yield srv
    srv.shutdown()


def test_stream_sends_token_level_deltas_that_add_up_to_the_result(replica):
    status, lines = stream_lines(replica.server_address[1], {"model": "tiny", "request": request_body(max_tokens=24)})
    assert status == 200
    assert lines[-1]["type"] == "result"
    result = lines[-1]["result"]
    for sample in result["samples"]:
        deltas = [x for x in lines if x["type"] == "delta" and x["sample"] == sample["sample"]]
        for phase, final in (("reasoning", "reasoning"), ("answer", "answer")):
            assert "".join(d["text"] for d in deltas if d["phase"] == phase) == sample[final]
        assert len(deltas) > 2  # token by token, not one delta per phase
        done = [x for x in lines if x["type"] == "sample_done" and x["sample"]["sample"] == sample["sample"]]
        assert done == [{"type": "sample_done", "sample": sample}]
    # deltas come before any sample_done: they were sent while decoding
    first_done = next(i for i, x in enumerate(lines) if x["type"] == "sample_done")
    assert sum(x["type"] == "delta" for x in lines[:first_done]) >= len(result["samples"])


def test_stream_of_a_bad_request_answers_400_json_before_any_line(replica):
    status, lines = stream_lines(replica.server_address[1], {"model": "tiny", "request": request_body(seed=-1)})
    assert status == 400 and lines[0]["error"]["param"] == "seed"


def test_a_client_that_goes_away_cancels_the_generation(replica):
    served = replica.store.pinned["tiny"]
    steps = []
    original = served.generate

    def counting(prompts, cfg, seed, samples, on_step=None):
        def hook(*args):
            steps.append(1)
            return on_step(*args)
        return original(prompts, cfg, seed, samples, hook)

    served.generate = counting
    try:
        long = request_body(max_tokens=None, samples=[0], soft_thinking={**request_body()["soft_thinking"],
                                                                         "max_thinking_tokens": 80})
        status, lines = stream_lines(replica.server_address[1], {"model": "tiny", "request": long}, keep=2)
        assert status == 200 and len(lines) == 2
        with served.lock:  # waits until the generation has ended
            pass
        for _ in range(100):
            if replica.load == 0:
                break
            threading.Event().wait(0.05)
    finally:
        served.generate = original
    assert replica.load == 0
    prompt = len(served.tokenizer.encode_chat(long["messages"]))
    assert 2 <= len(steps) < CONTEXT - prompt - 10  # stopped soon after the client left, not at the context end


def test_the_static_engine_streams_per_window_and_stops_when_the_client_leaves(model_folder):  # noqa: F811
    """--engine static (softgrpo.gpu_engine, eager on CPU): deltas still add up to the result, and they are sent
    while decoding (a client that leaves after two lines stops it before the end of the context)."""
    served = load_served_model(model_folder, "cpu", engine="static", backend="torch")
    srv = _start(make_server({"tiny": served}, "127.0.0.1", 0))
    try:
        port = srv.server_address[1]
        status, lines = stream_lines(port, {"model": "tiny", "request": request_body(max_tokens=40)})
        assert status == 200 and lines[-1]["type"] == "result"
        for sample in lines[-1]["result"]["samples"]:
            deltas = [x for x in lines if x["type"] == "delta" and x["sample"] == sample["sample"]]
            assert "".join(d["text"] for d in deltas if d["phase"] == "answer") == sample["answer"]
            assert "".join(d["text"] for d in deltas if d["phase"] == "reasoning") == sample["reasoning"]
        steps, original = [], served.generate

        def counting(prompts, cfg, seed, samples, on_step=None):
            return original(prompts, cfg, seed, samples, lambda *a: steps.append(1) or on_step(*a))

        served.generate = counting
        long = request_body(max_tokens=None, samples=[0], soft_thinking={**request_body()["soft_thinking"],
                                                                         "max_thinking_tokens": 80})
        status, lines = stream_lines(port, {"model": "tiny", "request": long}, keep=2)
        assert status == 200
        with served.lock:
            pass
        prompt = len(served.tokenizer.encode_chat(long["messages"]))
        assert 2 <= len(steps) < CONTEXT - prompt - 10
    finally:
        srv.shutdown()


def test_a_model_named_by_signed_urls_is_loaded_cached_and_reported(replica, files_server, model_folder):  # noqa: F811
    port = replica.server_address[1]
    spec = files_spec(model_folder, files_server, key="ft:tiny::ftjob-1:ckpt-2@abc")
    body = {"model": "ft:tiny::ftjob-1", "files": spec, "request": request_body(max_tokens=8)}
    status, lines = stream_lines(port, body)
    assert status == 200 and lines[-1]["type"] == "result"
    pinned_status, pinned = stream_lines(port, {"model": "tiny", "request": request_body(max_tokens=8)})
    assert lines[-1]["result"] == pinned[-1]["result"]  # same weights, same samples
    assert "ft:tiny::ftjob-1:ckpt-2@abc" in replica.store.held()
    status, lines = stream_lines(port, {**body, "files": files_spec(model_folder, files_server, key="other",
                                                                     corrupt="model.safetensors")})
    assert status == 502 and "sha256" in lines[0]["error"]["message"]
    status, lines = stream_lines(port, {**body, "files": {"key": "x", "files": [{"name": "../x", "url": "u",
                                                                               "sha256": "", "bytes": 1}]}})
    assert status == 400 and lines[0]["error"]["param"] == "files.files.0"


def test_a_pinned_model_named_by_its_key_is_served_without_a_download(model_folder, tmp_path):  # noqa: F811
    from softgrpo.model_store import pinned_key
    served = load_served_model(model_folder, "cpu")
    key = pinned_key("tiny-arith", model_folder)
    store = ModelStore(lambda folder: pytest.fail("must not load"), budget_bytes=0, cache_dir=tmp_path,
                       pinned={"tiny-arith": served}, pinned_keys={key: "tiny-arith"})
    unreachable = [{"name": "model.safetensors", "bytes": 1, "sha256": "0" * 64, "url": "http://127.0.0.1:9/x"}]
    assert store.get("tiny-arith", {"key": key, "files": unreachable}) is served
    assert key in store.held()


def test_pinned_keys_are_the_keys_the_api_gives_a_base_model():
    """src/replicas/model-key.ts names a base model `<id>@<first 16 hex of its model.safetensors sha256>`, with the
    hash the API holds (manifest.json's `files`, as the Node and Workers loaders read it)."""
    from pathlib import Path

    from softgrpo.model_store import pinned_key
    folder = Path(__file__).resolve().parents[2] / "models" / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert pinned_key("tiny-arith", folder) == "tiny-arith@" + manifest["files"]["model.safetensors"][:16]


def test_the_store_drops_the_least_recently_used_model_beyond_its_budget(files_server, model_folder, tmp_path):  # noqa: F811
    one = model_bytes(load_served_model(model_folder, "cpu"))
    store = ModelStore(lambda folder: load_served_model(folder, "cpu"), budget_bytes=2 * one, cache_dir=tmp_path)
    for key in ("a", "b", "a", "c"):  # "a" used again before "c" arrives: "b" is the least recently used
        store.get("m", files_spec(model_folder, files_server, key=key))
    assert store.held() == ["a", "c"]
    assert store.used_bytes() == 2 * one


def test_text_stream_holds_back_a_possible_stop_string_and_never_sends_past_it():
    pieces = {1: "The ", 2: "ans", 3: "wer", 4: " is", 5: " 4", 6: "2"}
    decode = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    stream = SampleTextStream(decode, think_end_id=98, eos_id=99, stop=["wer i"])
    sent = [stream.push(t, thinking=False) for t in (1, 2, 3, 4, 5, 6)]
    text = "".join(d for step in sent for _, d in step)
    assert text == "The ans"  # "The answer is 42" is cut before "wer i"; nothing from the stop string on was sent
    assert stream.finish("answer", "The ans") == ""
