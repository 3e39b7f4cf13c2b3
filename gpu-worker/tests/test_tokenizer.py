"""softgrpo.tokenizer: chat template rendering (against transformers), special token ids, clear errors."""

import json

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from softgrpo.model import ModelFolderError
from softgrpo.tokenizer import ChatTokenizer

QWEN_LIKE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)
NO_THINK = QWEN_LIKE.replace("<think>\\n", "")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12 + 30?"}]


def write_folder(path, template=QWEN_LIKE, think=True):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["What is 12 + 30? Be brief. user assistant system"] * 10, trainer=trainer)
    if think:
        tok.add_tokens([AddedToken("<think>", special=False), AddedToken("</think>", special=False)])
    tok.save(str(path / "tokenizer.json"))
    config = {"chat_template": template, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def test_generation_prompt_ends_with_open_think_tag(tmp_path):
    tok = ChatTokenizer.from_pretrained(write_folder(tmp_path))
    text = tok.render_chat(MESSAGES)
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    ids = tok.encode_chat(MESSAGES)
    assert ids[-2:] == [tok.think_start_id, tok.encode("\n")[0]]
    assert not tok.render_chat(MESSAGES, add_generation_prompt=False).endswith("<think>\n")


def test_template_without_think_block_gets_it_appended(tmp_path):
    tok = ChatTokenizer.from_pretrained(write_folder(tmp_path, template=NO_THINK))
    assert tok.render_chat(MESSAGES).endswith("<|im_start|>assistant\n<think>\n")


def test_rendering_matches_transformers_apply_chat_template(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = write_folder(tmp_path)
    ours = ChatTokenizer.from_pretrained(folder)
    ref = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), chat_template=QWEN_LIKE)
    for gen in (True, False):
        expected = ref.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=gen)
        assert ours.render_chat(MESSAGES, add_generation_prompt=gen) == expected
        assert ours.encode_chat(MESSAGES, add_generation_prompt=gen) == ref(expected, add_special_tokens=False)["input_ids"]


def test_special_token_ids_and_decode_round_trip(tmp_path):
    tok = ChatTokenizer.from_pretrained(write_folder(tmp_path))
    assert tok.decode([tok.eos_id]) == "<|im_end|>"
    assert tok.decode([tok.think_end_id]) == "</think>"
    assert tok.pad_id == tok.token_id("<|endoftext|>")
    text = "<think>\n12 + 30 = 42\n</think>\n\\boxed{42}<|im_end|>"
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text.replace("<|im_end|>", "")
    assert [tok.decode([i]) for i in tok.encode("1234")] == ["1", "2", "3", "4"]


def test_missing_files_template_or_think_token_fail_with_clear_errors(tmp_path):
    with pytest.raises(ModelFolderError, match="no tokenizer.json"):
        ChatTokenizer.from_pretrained(tmp_path)
    write_folder(tmp_path, think=False)
    with pytest.raises(ModelFolderError, match="'<think>'"):
        ChatTokenizer.from_pretrained(tmp_path)
    write_folder(tmp_path, template="")
    with pytest.raises(ModelFolderError, match="chat_template"):
        ChatTokenizer.from_pretrained(tmp_path)


def test_template_raise_exception_surfaces(tmp_path):
    strict = "{%- if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}"
    tok = ChatTokenizer.from_pretrained(write_folder(tmp_path, template=strict + QWEN_LIKE))
    with pytest.raises(Exception, match="first message must be user"):
        tok.render_chat(MESSAGES)


def test_template_saved_as_chat_template_jinja_file_is_used(tmp_path):
    write_folder(tmp_path, template="")
    (tmp_path / "chat_template.jinja").write_text(QWEN_LIKE)
    tok = ChatTokenizer.from_pretrained(tmp_path)
    assert tok.render_chat(MESSAGES).startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
