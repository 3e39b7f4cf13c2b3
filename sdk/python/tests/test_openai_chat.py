"""The official `openai` Python client (PyPI, pinned in gpu-worker's dev dependencies) against the real Node API
(conftest.py) serving the bundled tiny model: chat.completions (n, stream, stop, logprobs / top_logprobs, temperature
0, the developer role and text content parts, a 400 naming an unsupported field) and the legacy completions (a prompt
list with n, stop, logprobs, stream). Every response is validated strictly against the client's own pydantic models.

Run: PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 gpu-worker/.venv/bin/python -m pytest sdk/python/tests/test_openai_chat.py -q
"""

from __future__ import annotations

import pytest
from openai import BadRequestError, OpenAI
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

MODEL = "tiny-arith"
QUESTION = "Mia has 7 apples. She buys 3 more. How many apples does Mia have now?"
USER = [{"role": "user", "content": QUESTION}]
GREEDY = {"temperature": 0, "max_tokens": 64}


@pytest.fixture()
def client(server):
    if not server.servable:
        pytest.skip("no servable bundled model (models/*/manifest.json with model.onnx)")
    with OpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0) as c:
        yield c


def strict_chat(client: OpenAI, **kwargs) -> ChatCompletion:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, **kwargs)
    return ChatCompletion.model_validate(raw.http_response.json(), strict=True)


def test_chat_n_choices_with_reasoning_content(client):
    completion = strict_chat(client, messages=USER, n=3, max_tokens=48, seed=5)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
        assert choice.message.model_extra["reasoning_content"]  # the thinking text, as DeepSeek-style clients read it
        assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 0 < usage.completion_tokens_details.reasoning_tokens <= usage.completion_tokens


def test_chat_stream_adds_up_to_the_plain_completion(client):
    plain = strict_chat(client, messages=USER, n=2, **GREEDY)
    stream = client.chat.completions.create(model=MODEL, messages=USER, n=2, stream=True,
                                            stream_options={"include_usage": True}, **GREEDY)
    chunks = [ChatCompletionChunk.model_validate(chunk.model_dump(exclude_unset=True), strict=True) for chunk in stream]
    assert chunks[-1].usage == plain.usage
    for choice in plain.choices:
        deltas = [c for chunk in chunks for c in chunk.choices if c.index == choice.index]
        assert "".join(d.delta.content or "" for d in deltas) == choice.message.content
        assert deltas[-1].finish_reason == choice.finish_reason


def test_chat_stop_cuts_the_answer(client):
    full = strict_chat(client, messages=USER, **GREEDY).choices[0]
    cut = strict_chat(client, messages=USER, stop=["{1", "never"], **GREEDY).choices[0]
    assert full.message.content == "\n\\boxed{10}"
    assert cut.message.content == "\n\\boxed" and cut.finish_reason == "stop"


def test_chat_logprobs_with_top_logprobs(client):
    choice = strict_chat(client, messages=USER, logprobs=True, top_logprobs=2, **GREEDY).choices[0]
    content = choice.logprobs.content
    assert b"".join(bytes(t.bytes) for t in content).decode() == choice.message.content
    for token in content:
        assert len(token.top_logprobs) == 2 and token.logprob <= 0
        assert token.top_logprobs[0].token == token.token  # greedy: the chosen token is the most likely
        assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob


def test_chat_temperature_0_is_the_same_for_every_seed(client):
    answers = {strict_chat(client, messages=USER, seed=seed, **GREEDY).choices[0].message.content for seed in (1, 2, 3)}
    assert answers == {"\n\\boxed{10}"}


def test_chat_developer_role_and_text_parts(client):
    parts = [{"type": "text", "text": QUESTION}]
    by_parts = strict_chat(client, messages=[{"role": "developer", "content": "Be brief."},
                                             {"role": "user", "content": parts}], **GREEDY)
    by_text = strict_chat(client, messages=[{"role": "system", "content": "Be brief."}, *USER], **GREEDY)
    assert by_parts.choices[0].message == by_text.choices[0].message


def test_chat_unsupported_field_is_a_400_naming_it(client):
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=USER, response_format={"type": "json_object"})
    assert info.value.body["param"] == "response_format.type"
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=USER, tools=[
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}])
    assert info.value.body["param"] == "tools"


def test_completions_prompt_list_n_stop_and_logprobs(client):
    raw = client.completions.with_raw_response.create(
        model=MODEL, prompt=[QUESTION, "Tom has 4 pens. He buys 2 more. How many pens does Tom have now?"], n=2,
        stop="}", logprobs=2, seed=3, **GREEDY)
    completion = Completion.model_validate(raw.http_response.json(), strict=True)
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    first = completion.choices[0]
    assert first.text == "\n\\boxed{10" and first.finish_reason == "stop"
    assert "".join(first.logprobs.tokens) == first.text + "}"  # the token that completed the stop string is listed
    assert all(first.logprobs.top_logprobs[i][t] == lp
               for i, (t, lp) in enumerate(zip(first.logprobs.tokens, first.logprobs.token_logprobs)))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_completions_stream_adds_up_to_the_plain_completion(client):
    plain = client.completions.create(model=MODEL, prompt=QUESTION, n=2, **GREEDY)
    stream = client.completions.create(model=MODEL, prompt=QUESTION, n=2, stream=True, **GREEDY)
    chunks = list(stream)
    for choice in plain.choices:
        mine = [c for chunk in chunks for c in chunk.choices if c.index == choice.index]
        assert "".join(c.text for c in mine) == choice.text
        assert mine[-1].finish_reason == choice.finish_reason


def test_completions_echo_is_a_400_naming_it(client):
    with pytest.raises(BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=QUESTION, echo=True)
    assert info.value.body["param"] == "echo"
