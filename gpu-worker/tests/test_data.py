"""Dataset JSONL validation: every bad line reported by number and field, extra keys kept."""
import json

import pytest

from softgrpo.data import DatasetError, example_messages, fit_prompts, load_jsonl, parse_jsonl


def test_accepts_prompt_or_messages_with_answer_and_keeps_extra_keys():
    text = "\n".join([
        json.dumps({"prompt": "What is 2+2?", "answer": 4, "source": "toy"}),
        "",
        json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}],
                    "answer": "2"}),
    ])
    examples = parse_jsonl(text)
    assert len(examples) == 2 and examples[0]["source"] == "toy"
    assert example_messages(examples[0]) == [{"role": "user", "content": "What is 2+2?"}]
    assert example_messages(examples[1])[0]["role"] == "system"


def test_rejects_jsonl_line_without_answer_naming_the_line():
    text = json.dumps({"prompt": "a", "answer": 1}) + "\n" + json.dumps({"prompt": "b"}) + "\n"
    with pytest.raises(DatasetError, match=r'line 2: missing "answer"'):
        parse_jsonl(text)


def test_reports_every_bad_line_before_training():
    lines = ['{"prompt": "ok", "answer": 1}', "{not json", '{"prompt": 3, "answer": 1}',
             '{"prompt": "x", "messages": [], "answer": 1}', '{"messages": [{"role": "user"}], "answer": 1}',
             '{"prompt": "x", "answer": true}', "[1, 2]"]
    with pytest.raises(DatasetError) as info:
        parse_jsonl("\n".join(lines), "train.jsonl")
    errors = info.value.errors
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "invalid JSON" in errors[0] and '"prompt"' in errors[1] and "messages[0]" in errors[3]
    assert '"answer"' in errors[4] and str(info.value).startswith("train.jsonl: line 2")
    assert [code for _, code in info.value.problems] == ["invalid_json", "invalid_prompt", "prompt_or_messages",
                                                         "invalid_message", "invalid_answer", "not_object"]


def test_empty_and_missing_files_fail_clearly(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no examples"):
        load_jsonl(empty)
    with pytest.raises(DatasetError, match="file not found"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_accepts_a_byte_order_mark_on_line_one_like_the_api(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + b'{"prompt": "1+1?", "answer": 2}\n')
    assert load_jsonl(path) == [{"prompt": "1+1?", "answer": 2}]


def test_prompts_that_do_not_fit_the_context_name_their_lines_unless_truncated():
    prompts = [[1] * 10, [2] * 200, [3] * 161, [4] * 160]
    with pytest.raises(DatasetError) as info:
        fit_prompts(prompts, 96, 256, "none", "training_file", line_numbers=[1, 3, 4, 6])
    assert info.value.problems == [(3, "prompt_too_long"), (4, "prompt_too_long")]
    assert info.value.errors[0].startswith("line 3: the prompt is 200 tokens")
    kept = fit_prompts(prompts, 96, 256, "left")
    assert [len(p) for p in kept] == [10, 160, 160, 160] and kept[1] == [2] * 160
    assert fit_prompts(prompts, 96, None, "none") == prompts  # no context known: nothing to check
