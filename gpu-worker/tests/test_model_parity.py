"""Our SoftTokenLM against the transformers reference implementations (Qwen2, Llama), fp32, random init."""

import json

import pytest
import torch

from softgrpo.model import ModelFolderError, SoftTokenLM

transformers = pytest.importorskip("transformers")
torch.set_num_threads(2)

BASE = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
)
CONFIGS = {
    "qwen2_tied": dict(BASE, model_type="qwen2", architectures=["Qwen2ForCausalLM"], tie_word_embeddings=True,
                       rope_theta=10000.0),
    "qwen2_untied": dict(BASE, model_type="qwen2", architectures=["Qwen2ForCausalLM"], tie_word_embeddings=False,
                         rope_theta=1000000.0),
    "llama_bias_headdim": dict(BASE, model_type="llama", architectures=["LlamaForCausalLM"], tie_word_embeddings=False,
                               attention_bias=True, mlp_bias=True, head_dim=24, rope_theta=500000.0),
    "llama3_rope_scaling": dict(BASE, model_type="llama", architectures=["LlamaForCausalLM"], tie_word_embeddings=True,
                                rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 64}),
}
TOL = dict(atol=1e-5, rtol=1e-5)


def reference_and_ours(name, tmp_path):
    """A random transformers model, saved with save_pretrained and loaded by our from_pretrained."""
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    hf_cfg = transformers.AutoConfig.for_model(**cfg)
    ref = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32).eval()
    with torch.no_grad():  # random biases and norms, so the test sees them (HF initialises them to 0 / 1)
        for n, p in ref.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    ref.save_pretrained(tmp_path)
    ours = SoftTokenLM.from_pretrained(tmp_path)
    return ref, ours


def discrete(tokens, k=3):
    """[B,T] tokens -> soft input ids [B,T,k] = [tok,0,..], weights [1,0,..]."""
    ids = torch.zeros(*tokens.shape, k, dtype=torch.long)
    ids[..., 0] = tokens
    weights = torch.zeros(*tokens.shape, k)
    weights[..., 0] = 1.0
    return ids, weights


@pytest.mark.parametrize("name", list(CONFIGS))
def test_discrete_logits_equal_transformers(name, tmp_path):
    ref, ours = reference_and_ours(name, tmp_path)
    tokens = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        expected = ref(input_ids=tokens).logits
        got = ours(*discrete(tokens)).logits
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("name", ["qwen2_untied", "llama_bias_headdim"])
def test_soft_input_equals_explicit_embedding_mix_through_inputs_embeds(name, tmp_path):
    ref, ours = reference_and_ours(name, tmp_path)
    ids = torch.randint(0, 97, (2, 7, 4))
    weights = torch.softmax(torch.randn(2, 7, 4), -1)
    E = ref.get_input_embeddings().weight
    mixed = (weights[..., None] * E[ids]).sum(2)
    with torch.no_grad():
        expected = ref(inputs_embeds=mixed).logits
        got = ours(ids, weights).logits
    torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(ours.embed(ids, weights), mixed, **TOL)


@pytest.mark.parametrize("name", ["qwen2_tied", "llama3_rope_scaling"])
def test_kv_cache_incremental_decode_equals_full_forward(name, tmp_path):
    _, ours = reference_and_ours(name, tmp_path)
    ids = torch.randint(0, 97, (2, 12, 3))
    weights = torch.softmax(torch.randn(2, 12, 3), -1)
    with torch.no_grad():
        full = ours(ids, weights).logits
        out = ours(ids[:, :7], weights[:, :7], use_cache=True)
        steps = [out.logits]
        for t in range(7, 12):
            out = ours(ids[:, t : t + 1], weights[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)
    assert out.past_key_values[0][0].shape == (2, 2, 12, 16)


def test_left_padding_with_attention_mask_matches_unpadded_rows(tmp_path):
    ref, ours = reference_and_ours("qwen2_untied", tmp_path)
    lengths, T = [9, 5, 2], 9
    rows = [torch.randint(0, 97, (n,)) for n in lengths]
    tokens = torch.zeros(3, T, dtype=torch.long)
    mask = torch.zeros(3, T, dtype=torch.long)
    for b, r in enumerate(rows):
        tokens[b, T - len(r):] = r
        mask[b, T - len(r):] = 1
    with torch.no_grad():
        out = ours(*discrete(tokens), attention_mask=mask, use_cache=True)
        # one decode step after the padded prefill
        nxt = torch.randint(0, 97, (3, 1))
        mask2 = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
        step = ours(*discrete(nxt), attention_mask=mask2, past_key_values=out.past_key_values).logits
        for b, r in enumerate(rows):
            single = ref(input_ids=r[None]).logits[0]
            torch.testing.assert_close(out.logits[b, T - len(r):], single, **TOL)
            single_next = ref(input_ids=torch.cat([r, nxt[b]])[None]).logits[0, -1]
            torch.testing.assert_close(step[b, 0], single_next, **TOL)
    assert torch.isfinite(out.logits).all()


def test_return_hidden_gives_final_norm_states_that_make_the_logits(tmp_path):
    _, ours = reference_and_ours("qwen2_untied", tmp_path)
    tokens = torch.randint(0, 97, (2, 5))
    with torch.no_grad():
        out = ours(tokens, return_hidden=True)
    assert out.hidden.shape == (2, 5, 64)
    torch.testing.assert_close(out.hidden @ ours.lm_head_weight.T, out.logits, **TOL)


def test_save_pretrained_round_trips_and_transformers_loads_it(tmp_path):
    model = SoftTokenLM.from_config(CONFIGS["qwen2_tied"], seed=1)
    model.save_pretrained(tmp_path)
    again = SoftTokenLM.from_pretrained(tmp_path)
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    tokens = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(again(tokens).logits, model(tokens).logits, atol=0, rtol=0)
        torch.testing.assert_close(again(tokens).logits, ref(input_ids=tokens).logits, **TOL)


def test_unknown_folder_and_bad_config_fail_with_a_message_naming_the_problem(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        SoftTokenLM.from_pretrained(tmp_path / "nope")
    with pytest.raises(ModelFolderError, match="no config.json"):
        SoftTokenLM.from_pretrained(tmp_path)
    bad = dict(CONFIGS["qwen2_tied"])
    del bad["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ModelFolderError, match="hidden_size"):
        SoftTokenLM.from_pretrained(tmp_path)
    with pytest.raises(ModelFolderError, match="model_type 'gpt2'"):
        SoftTokenLM.from_config(dict(CONFIGS["qwen2_tied"], model_type="gpt2"))


def test_left_padded_bf16_forward_stays_finite():
    model = SoftTokenLM.from_config(CONFIGS["qwen2_tied"], seed=2).to(torch.bfloat16).eval()
    tokens = torch.randint(0, 97, (2, 6))
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model(tokens, attention_mask=mask, use_cache=True)
        step = model(tokens[:, :1], attention_mask=torch.cat([mask, mask[:, :1] * 0 + 1], 1),
                     past_key_values=out.past_key_values)
    assert out.logits.dtype == torch.bfloat16
    assert torch.isfinite(out.logits).all() and torch.isfinite(step.logits).all()
