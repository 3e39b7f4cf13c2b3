"""Train the tiny model's byte-level BPE tokenizer and write tokenizer.json + tokenizer_config.json.

Standard components only, so @huggingface/tokenizers (JavaScript) loads the same file: a Sequence pre-tokenizer
(Digits with individual digits, then ByteLevel), a BPE model over the 256 byte symbols, a ByteLevel decoder.
Digits are single tokens so that arithmetic is done digit by digit (as in Qwen2 and Llama 3 tokenizers).
Special tokens: <|endoftext|> (id 0, pad), <|im_start|>, <|im_end|> (eos), <think>, </think>.
The chat template is Qwen-like and its generation prompt opens the thinking block: `<|im_start|>assistant\\n<think>\\n`.

    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_tokenizer.py --data models/tiny/data --out models/tiny

Departs from the paper: Qwen/Llama models ship 150k-token vocabularies; 640 tokens cover this toy task.
"""

import argparse
import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK = ["<think>", "</think>"]  # added tokens that decode as text, like Qwen3's
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)
VOCAB_SIZE = 640


def training_texts(data_dir: Path):
    """Rendered training conversations: the tokenizer sees exactly what the model will."""
    for line in open(data_dir / "train.jsonl"):
        row = json.loads(line)
        yield f"<|im_start|>user\n{row['prompt']}<|im_end|>\n<|im_start|>assistant\n<think>\n{row['target']}<|im_end|>\n"


def build_tokenizer(data_dir: Path) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL + THINK,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_texts(data_dir), trainer=trainer)
    # re-register so the think tags are added tokens that are not "special" (they stay in decoded text)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK])
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="models/tiny/data")
    ap.add_argument("--out", default="models/tiny")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(Path(args.data))
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"vocab {tok.get_vocab_size()} -> {out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
