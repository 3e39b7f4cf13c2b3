"""The `serve` HTTP process of the remote engine: the Node engine's request JSON in, softgrpo.rollout underneath,
the same result JSON out; bad input answers 400 naming the field. A real server on a free port, a random tiny model.
"""
import json
import threading
import urllib.error
import urllib.request

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from softgrpo.kernels import triton_available
from softgrpo.model import SoftTokenLM
from softgrpo.rollout import RolloutConfig, generate
from softgrpo.sampler import SoftStepConfig
from softgrpo.serve import load_served_model, make_server

torch.set_num_threads(1)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")
CONTEXT = 96


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-model")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [f"Mia has {i} apples. She buys {i % 7} more. {i} + {i % 7} = {i + i % 7}" for i in range(100)]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=280, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": TEMPLATE, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": tok.get_vocab_size(),
              "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
              "rope_theta": 10000.0, "tie_word_embeddings": True, "initializer_range": 0.5}
    SoftTokenLM.from_config(config, seed=0).save_pretrained(folder)
    (folder / "manifest.json").write_text(json.dumps({"format": "softgrpo-model/1", "context_length": CONTEXT}))
    return folder


@pytest.fixture(scope="module")
def server(model_folder):
    served = load_served_model(model_folder, "cpu")
    srv = make_server({"tiny": served}, "127.0.0.1", 0, token="secret")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, served
    srv.shutdown()


def request_body(**over):
    body = {
        "messages": [{"role": "user", "content": "Mia has 7 apples. She buys 3 more."}],
        "mode": "soft",
        "soft_thinking": {"temperature": 1.0, "top_k": 5, "top_p": 0.95, "min_p": 0.0, "max_topk": 4,
                          "gumbel_tau": 0.1, "noise_scale": 1.0, "max_thinking_tokens": 6, "cold_stop": None},
        "answer": {"temperature": 1.0, "top_k": 5, "top_p": 0.95, "min_p": 0.0},
        "max_tokens": 10, "seed": 42, "samples": [0, 1, 2],
    }
    body.update(over)
    return body


def post(srv, payload, token="secret"):
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1/generate"
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_generate_returns_the_rollout_of_the_same_settings(server):
    srv, served = server
    status, result = post(srv, {"model": "tiny", "request": request_body()})
    assert status == 200
    prompt = served.tokenizer.encode_chat([{"role": "user", "content": "Mia has 7 apples. She buys 3 more."}])
    cfg = RolloutConfig(mode="soft", thinking=SoftStepConfig(top_k=5, top_p=0.95, max_topk=4, gumbel_tau=0.1,
                                                             noise_scale=1.0),
                        answer_temperature=1.0, answer_top_k=5, answer_top_p=0.95, max_response_tokens=10,
                        max_thinking_tokens=6)
    direct = generate(served.model, served.tokenizer, [prompt] * 3, cfg, 42, [0, 1, 2])
    assert result["prompt_tokens"] == len(prompt)
    assert [s["token_ids"] for s in result["samples"]] == [r.tokens.tolist() for r in direct]
    for s, r in zip(result["samples"], direct):
        assert s["reasoning_tokens"] == r.n_thinking and s["answer_tokens"] == r.n_answer
        assert s["finish_reason"] == r.finish_reason and s["thinking_end"] == r.thinking_end
        assert s["reasoning_tokens"] + s["answer_tokens"] == len(s["token_ids"]) <= 10
    assert [s["sample"] for s in result["samples"]] == [0, 1, 2]


def test_a_sample_index_gives_the_same_tokens_alone_or_in_a_batch(server):
    srv, _ = server
    _, batch = post(srv, {"model": "tiny", "request": request_body()})
    _, alone = post(srv, {"model": "tiny", "request": request_body(samples=[2])})
    assert alone["samples"][0]["token_ids"] == batch["samples"][2]["token_ids"]
    _, discrete = post(srv, {"model": "tiny", "request": request_body(mode="discrete")})
    assert all(s["thinking_end"] in (None, "emitted", "cap") for s in discrete["samples"])


@pytest.mark.parametrize("over, param", [
    ({"messages": [{"role": "user", "content": "7 + " * 200}]}, "messages"),
    ({"max_tokens": 10_000}, "max_tokens"),
    ({"samples": []}, "samples"),
    ({"mode": "beam"}, "mode"),
    ({"soft_thinking": {"top_k": "five"}}, "soft_thinking.temperature"),
    ({"answer": {"temperature": 1.0, "top_k": 5, "top_p": "x", "min_p": 0.0}}, "answer.top_p"),
    # values of the right type but out of range must not reach the sampler (it would raise: a 500)
    ({"answer": {"temperature": -1.0, "top_k": 5, "top_p": 0.9, "min_p": 0.0}}, "answer.temperature"),
    ({"answer": {"temperature": 1.0, "top_k": -3, "top_p": 0.9, "min_p": 0.0}}, "answer.top_k"),
    ({"answer": {"temperature": 1.0, "top_k": 5, "top_p": 0.9, "min_p": 1.5}}, "answer.min_p"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "temperature": 0}}, "soft_thinking.temperature"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "top_p": 0}}, "soft_thinking.top_p"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "max_topk": 0}}, "soft_thinking.max_topk"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "max_topk": 100_000}}, "soft_thinking.max_topk"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "gumbel_tau": 0.0}}, "soft_thinking.gumbel_tau"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "noise_scale": -1}}, "soft_thinking.noise_scale"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "max_thinking_tokens": 0}},
     "soft_thinking.max_thinking_tokens"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "cold_stop": 3}}, "soft_thinking.cold_stop"),
    ({"soft_thinking": {**request_body()["soft_thinking"], "cold_stop": {"entropy": 0.1, "steps": 0}}},
     "soft_thinking.cold_stop.steps"),
    ({"soft_thinking": {k: v for k, v in request_body()["soft_thinking"].items() if k != "cold_stop"}},
     "soft_thinking.cold_stop"),
    ({"seed": -1}, "seed"), ({"seed": 2**60}, "seed"), ({"seed": True}, "seed"),
    ({"samples": [0, 2**40]}, "samples"), ({"samples": [True]}, "samples"), ({"samples": "0"}, "samples"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": "ten"}, "max_tokens"), ({"max_tokens": 2.5}, "max_tokens"),
    ({"messages": []}, "messages"), ({"messages": ["hi"]}, "messages.0.role"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
])
def test_bad_request_fields_answer_400_naming_the_field(server, over, param):
    srv, _ = server
    status, body = post(srv, {"model": "tiny", "request": request_body(**over)})
    assert status == 400
    assert body["error"]["param"] == param


def test_unknown_model_bad_json_and_missing_token(server):
    srv, _ = server
    status, body = post(srv, {"model": "other", "request": request_body()})
    assert (status, body["error"]["param"]) == (400, "model")
    status, body = post(srv, b"{not json")
    assert status == 400 and "JSON" in body["error"]["message"]
    status, _ = post(srv, {"model": "tiny", "request": request_body()}, token=None)
    assert status == 401
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.server_address[1]}/health", timeout=10) as res:
        assert json.loads(res.read()) == {"models": ["tiny"], "held": ["tiny"], "load": 0}


def test_greedy_answer_request_answers_200_with_argmax_answers(server):
    """answer.temperature 0 is greedy (the Node schema allows it): it decodes, and every sample's answer is the
    same whatever its sample index, since nothing is drawn after thinking ends (noise off: thinking is the same too)."""
    srv, served = server
    soft = {**request_body()["soft_thinking"], "noise_scale": 0.0}
    greedy = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    status, result = post(srv, {"model": "tiny", "request": request_body(answer=greedy, soft_thinking=soft)})
    assert status == 200, result
    tokens = [s["token_ids"] for s in result["samples"]]
    assert len(tokens) == 3 and tokens[0] == tokens[1] == tokens[2]
    assert all(s["answer_tokens"] > 0 for s in result["samples"])
    status, result = post(srv, {"model": "tiny", "request": request_body(mode="discrete", answer=greedy)})
    assert status == 200, result
    assert len({tuple(s["token_ids"]) for s in result["samples"]}) == 1


@pytest.mark.parametrize("payload", [b"[1, 2]", b"\xff\xfe{", b"[" * 100_000, b"NaN", b"{\"model\": 5}",
                                     b"{\"model\": \"tiny\", \"request\": []}"])
def test_malformed_bodies_answer_400_not_500(server, payload):
    srv, _ = server
    status, body = post(srv, payload)
    assert status == 400, body
    assert body["error"]["message"]


def test_non_finite_numbers_answer_400(server):
    srv, _ = server
    # Python's json accepts NaN / Infinity literals; they must not reach the sampler
    raw = json.dumps({"model": "tiny", "request": request_body()}).replace('"gumbel_tau": 0.1', '"gumbel_tau": NaN')
    status, body = post(srv, raw.encode())
    assert (status, body["error"]["param"]) == (400, "soft_thinking.gumbel_tau")


def serve_with(model_folder, engine, backend):
    srv = make_server({"tiny": load_served_model(model_folder, "cpu", engine, backend)}, "127.0.0.1", 0,
                      token="secret")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_static_engine_serves_the_plain_engines_tokens(server, model_folder):
    plain, _ = server
    static = serve_with(model_folder, "static", "torch")
    try:
        for over in ({}, {"mode": "discrete"}, {"samples": [2]}):
            status, ours = post(static, {"model": "tiny", "request": request_body(**over)})
            assert status == 200, ours
            _, ref = post(plain, {"model": "tiny", "request": request_body(**over)})
            assert [s["token_ids"] for s in ours["samples"]] == [s["token_ids"] for s in ref["samples"]]
            assert ours["samples"] == ref["samples"]
        greedy = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
        soft = {**request_body()["soft_thinking"], "noise_scale": 0.0}
        for over in ({"answer": greedy, "soft_thinking": soft}, {"answer": greedy, "mode": "discrete"}):
            status, ours = post(static, {"model": "tiny", "request": request_body(**over)})
            assert status == 200, ours
            assert ours["samples"] == post(plain, {"model": "tiny", "request": request_body(**over)})[1]["samples"]
    finally:
        static.shutdown()


@pytest.mark.skipif(not triton_available("cpu"), reason="needs TRITON_INTERPRET=1")
def test_static_triton_engine_serves_greedy_and_rejects_unbounded_top_k(server, model_folder):
    plain, _ = server
    static = serve_with(model_folder, "static", "triton")
    try:
        soft = {**request_body()["soft_thinking"], "noise_scale": 0.0}
        greedy = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
        body = {"model": "tiny", "request": request_body(answer=greedy, soft_thinking=soft, samples=[0])}
        status, ours = post(static, body)
        assert status == 200, ours
        assert ours["samples"][0]["token_ids"] == post(plain, body)[1]["samples"][0]["token_ids"]
        unbounded = {**request_body()["soft_thinking"], "top_k": 0}
        status, err = post(static, {"model": "tiny", "request": request_body(soft_thinking=unbounded)})
        assert (status, err["error"]["param"]) == (400, "soft_thinking.top_k")
    finally:
        static.shutdown()


def test_triton_backend_that_cannot_run_fails_at_load(model_folder, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="Triton cannot run on device cpu"):
        load_served_model(model_folder, "cpu", "static", "triton")
    with pytest.raises(ValueError, match="rollout_engine must be one of"):
        load_served_model(model_folder, "cpu", "graph", "torch")


GREEDY = {"temperature": 0.0, "top_k": 5, "top_p": 0.95, "min_p": 0.0}


def test_temperature_0_is_greedy_end_to_end_whatever_the_seed(server):
    """answer.temperature 0 with noise off decodes the same tokens for every seed and sample index; with Gumbel noise
    on it would not be greedy, so it answers 400 naming soft_thinking.noise_scale (as the Node API does)."""
    srv, _ = server
    soft = {**request_body()["soft_thinking"], "noise_scale": 0.0}
    results = [post(srv, {"model": "tiny", "request": request_body(answer=GREEDY, soft_thinking=soft, seed=seed)})
               for seed in (1, 2, 99)]
    assert all(status == 200 for status, _ in results)
    assert len({tuple(s["token_ids"]) for _, body in results for s in body["samples"]}) == 1
    status, err = post(srv, {"model": "tiny", "request": request_body(answer=GREEDY)})  # noise_scale 1.0
    assert (status, err["error"]["param"]) == (400, "soft_thinking.noise_scale")
    status, _ = post(srv, {"model": "tiny", "request": request_body(answer=GREEDY, mode="discrete")})
    assert status == 200  # discrete mode has no thinking noise


def _long_answers(**over):
    soft = {**request_body()["soft_thinking"], "max_thinking_tokens": 2}
    return request_body(soft_thinking=soft, max_tokens=40, **over)


def test_stop_cuts_the_answer_at_the_token_that_completes_the_stop_string(server):
    srv, served = server
    _, full = post(srv, {"model": "tiny", "request": _long_answers()})
    # a 2-character piece of some answer past its start, without replacement characters (half a UTF-8 character)
    sample, stop = next((s, s["answer"][i:i + 2]) for s in full["samples"] for i in range(2, len(s["answer"]) - 2)
                        if "\ufffd" not in s["answer"][i:i + 2])
    status, cut = post(srv, {"model": "tiny", "request": _long_answers(stop=["\u2603", stop])})
    assert status == 200, cut
    ours = cut["samples"][full["samples"].index(sample)]
    at = sample["answer"].index(stop)
    assert ours["answer"] == sample["answer"][:at] and ours["finish_reason"] == "stop"
    kept = ours["answer_tokens"]
    assert ours["token_ids"] == sample["token_ids"][: ours["reasoning_tokens"] + kept]
    answer_ids = ours["token_ids"][ours["reasoning_tokens"]:]
    decode = lambda ids: served.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    assert stop in decode(answer_ids) and stop not in decode(answer_ids[:-1])  # the first token that completes it
    assert cut["samples"][0]["reasoning"] == full["samples"][0]["reasoning"]  # thinking is never cut


def test_logprobs_are_the_models_log_softmax_at_each_answer_token(server):
    """With an unfiltered temperature-1 answer the rollout's own policy log-prob of a discrete step is log_softmax of
    the raw logits: the recomputed logprobs must equal it; the alternatives are sorted and their bytes decode."""
    srv, served = server
    plain = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    request = _long_answers(answer=plain, logprobs=3)
    status, body = post(srv, {"model": "tiny", "request": request})
    assert status == 200, body
    cfg = RolloutConfig(mode="soft", thinking=SoftStepConfig(top_k=5, top_p=0.95, max_topk=4, gumbel_tau=0.1,
                                                             noise_scale=1.0),
                        answer_temperature=1.0, answer_top_k=0, answer_top_p=1.0, max_response_tokens=40,
                        max_thinking_tokens=2)
    prompt = served.tokenizer.encode_chat(request["messages"])
    direct = generate(served.model, served.tokenizer, [prompt] * 3, cfg, 42, [0, 1, 2])
    for s, r in zip(body["samples"], direct):
        answer = [t for t in r.tokens[r.n_thinking:].tolist() if t != served.tokenizer.eos_id]
        assert len(s["logprobs"]) == len(answer)
        expected = r.logprob[r.n_thinking:r.n_thinking + len(answer)].tolist()
        assert [e["logprob"] for e in s["logprobs"]] == pytest.approx(expected, abs=1e-4)
        for e, token in zip(s["logprobs"], answer):
            assert bytes(e["bytes"]) == served.tokenizer.token_bytes(token)
            tops = [t["logprob"] for t in e["top_logprobs"]]
            assert len(tops) == 3 and tops == sorted(tops, reverse=True) and e["logprob"] <= tops[0] + 1e-9
        special = served.tokenizer.tokenizer.get_added_tokens_decoder()  # shown in logprobs, left out of the text
        text = [bytes(e["bytes"]) for e, token in zip(s["logprobs"], answer) if token not in special]
        assert b"".join(text).decode(errors="replace") == s["answer"]


@pytest.mark.parametrize("over, param", [({"stop": "x"}, "stop"), ({"stop": ["a"] * 5}, "stop"), ({"stop": [""]}, "stop"),
                                         ({"logprobs": 21}, "logprobs"), ({"logprobs": True}, "logprobs")])
def test_bad_stop_and_logprobs_answer_400(server, over, param):
    srv, _ = server
    status, body = post(srv, {"model": "tiny", "request": request_body(**over)})
    assert (status, body["error"]["param"]) == (400, param)
