"""Test fixtures shared by the rollout tests: a token-id tokenizer and a small random Qwen2 model.

Not a test file (no `test_` prefix); imported as `toy_model` because pytest puts this folder on sys.path.
"""
from softgrpo.model import SoftTokenLM

PAD, EOS, THINK_END = 0, 2, 3


class ToyTokenizer:
    """The four attributes generate() needs; text is the token ids joined by spaces."""
    pad_id, eos_id, think_end_id = PAD, EOS, THINK_END

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


def random_model(vocab: int, seed: int = 0, initializer_range: float = 0.2) -> SoftTokenLM:
    """A 2-layer GQA Qwen2 (hidden 32) in eval mode; a larger initializer_range gives peakier logits."""
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": vocab, "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "tie_word_embeddings": True, "initializer_range": initializer_range}
    return SoftTokenLM.from_config(config, seed=seed).eval()
