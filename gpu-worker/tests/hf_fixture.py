"""Random-weight Hugging Face model folders at real architectures, saved by `transformers` (no network).

    gpu-worker/.venv/bin/python gpu-worker/tests/hf_fixture.py <out-dir> --arch qwen2|llama [--untied] [--shard-kb N]
        [--dtype float32|bfloat16] [--shape tiny|qwen2.5-0.5b] [--no-think-tokens]

What a user downloads from the Hub, shrunk: config.json written by transformers' own config class,
model*.safetensors (+ model.safetensors.index.json when sharded) by `save_pretrained`, a byte-level BPE
tokenizer.json (trained here with `tokenizers` on a small text) whose special tokens and chat template are those of
the real family (Qwen2.5-Instruct's ChatML template with its tools branch; Llama 3 Instruct's header template), saved
through PreTrainedTokenizerFast so tokenizer_config.json / chat_template.jinja are laid out as transformers lays
them out. `--shape qwen2.5-0.5b` is Qwen2.5-0.5B's exact geometry (494M parameters) for the benchmark; the
tokenizer stays small, so its vocabulary is padded up to the embedding's 151936 rows as real Qwen checkpoints are.
Used by the pytest fixtures (tests/test_import_model.py), the Node end-to-end test (tests/e2e/model-import.test.ts)
and bench/model-import.ts.
"""

import argparse
import json
import sys
from pathlib import Path

QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided "
    "with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)

LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

FAMILIES = {
    "qwen2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        template=QWEN25_CHAT_TEMPLATE, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
        config=dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], rope_theta=1000000.0,
                    use_sliding_window=False, max_window_layers=21, sliding_window=None),
    ),
    "llama": dict(
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        template=LLAMA3_CHAT_TEMPLATE, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|end_of_text|>",
        config=dict(model_type="llama", architectures=["LlamaForCausalLM"], rope_theta=500000.0, attention_bias=False,
                    mlp_bias=False, rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    ),
}

SHAPES = {
    # shrunken: a few layers, real head layout (GQA), vocabulary padded past the tokenizer like real checkpoints
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, vocab_extra=16),
    # Qwen2.5-0.5B(-Instruct) exactly: 24 layers, d 896, 14 heads / 2 kv heads, mlp 4864, 151936 rows, tied
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, max_position_embeddings=32768, vocab_size=151936),
}

CORPUS = [
    "What is 12 + 7? Let me think step by step. 12 + 7 = 19. The answer is \\boxed{19}.",
    "Solve 3 * 4 - 5. First 3 * 4 = 12, then 12 - 5 = 7, so the answer is \\boxed{7}.",
    "The quick brown fox jumps over the lazy dog while counting 0 1 2 3 4 5 6 7 8 9.",
    "You are a helpful assistant. Answer the question and put the final answer in \\boxed{}.",
    "Compute the sum of the numbers from one to ten: 1+2+3+4+5+6+7+8+9+10 = 55.",
]


def build_tokenizer(family: str, think_tokens: bool):
    """A byte-level BPE tokenizer with the family's special tokens (and <think>, </think> when asked)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    specials = spec["specials"] + (["<think>", "</think>"] if think_tokens else [])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=spec["eos"], pad_token=spec["pad"],
                                   bos_token=spec["bos"], model_max_length=spec.get("model_max_length", 32768))
    fast.chat_template = spec["template"]
    return fast


def build(out: str | Path, arch: str = "qwen2", tied: bool = True, shard_kb: int | None = None,
          dtype: str = "float32", shape: str = "tiny", think_tokens: bool = True, seed: int = 0) -> Path:
    """Write a random-weight model folder as transformers saves it; returns its path."""
    import torch
    import transformers

    out = Path(out)
    tokenizer = build_tokenizer(arch, think_tokens)
    geometry = dict(SHAPES[shape])
    vocab = geometry.pop("vocab_size", None) or len(tokenizer) + geometry.pop("vocab_extra")
    geometry.pop("vocab_extra", None)
    spec = FAMILIES[arch]
    family_config = json.loads(json.dumps(spec["config"]))
    if "rope_scaling" in family_config:  # Llama 3.1+ frequency scaling, kept below the shrunken context
        family_config["rope_scaling"]["original_max_position_embeddings"] = geometry["max_position_embeddings"] // 4
    cfg = transformers.AutoConfig.for_model(
        **family_config, **geometry, vocab_size=vocab, tie_word_embeddings=tied, rms_norm_eps=1e-6,
        bos_token_id=tokenizer.convert_tokens_to_ids(spec["bos"]) if spec["bos"] else None,
        eos_token_id=tokenizer.convert_tokens_to_ids(spec["eos"]),
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype)).eval()
    model.save_pretrained(out, max_shard_size=f"{shard_kb}KB" if shard_kb else "50GB")
    tokenizer.save_pretrained(out)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", choices=sorted(FAMILIES), default="qwen2")
    ap.add_argument("--untied", action="store_true", help="separate lm_head (tie_word_embeddings=false)")
    ap.add_argument("--shard-kb", type=int, help="save sharded safetensors with shards of at most this many kB")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--no-think-tokens", action="store_true", help="leave <think> and </think> out of the vocabulary")
    args = ap.parse_args(argv)
    path = build(args.out, args.arch, not args.untied, args.shard_kb, args.dtype, args.shape, not args.no_think_tokens)
    print(json.dumps({"folder": str(path), "files": sorted(p.name for p in path.iterdir())}))


if __name__ == "__main__":
    sys.exit(main())
