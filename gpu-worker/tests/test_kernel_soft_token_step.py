"""Kernel 1 (Triton soft-token / discrete step) against the torch reference softgrpo.sampler.

Run: cd gpu-worker && TRITON_INTERPRET=1 .venv/bin/python -m pytest tests/test_kernel_soft_token_step.py
"""
import pytest
import torch

from softgrpo.kernels import triton_available
from softgrpo.sampler import SoftStepConfig, discrete_step, soft_token_step

pytestmark = pytest.mark.skipif(not triton_available(), reason="needs CUDA or TRITON_INTERPRET=1")
if triton_available():
    from softgrpo.kernels.soft_token_step import discrete_step_triton, soft_token_step_triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"

# (config, logit scale): a larger scale makes p peaked so that top_p / min_p really cut inside the top_k set
CONFIGS = {
    "softgrpo_defaults": (SoftStepConfig(), 3.0),
    "soft_thinking_defaults": (SoftStepConfig(temperature=0.6, top_k=30, top_p=0.95, min_p=0.001, max_topk=10,
                                              noise_scale=0.0), 1.0),
    "more_slots_than_kept": (SoftStepConfig(top_k=3, top_p=0.5, max_topk=6), 4.0),
    "min_p_and_unclamped_noise": (SoftStepConfig(temperature=1.3, top_k=17, top_p=1.0, min_p=0.05, max_topk=7,
                                                 gumbel_tau=0.5, noise_scale=0.7, clamp_noise=False), 2.0),
    "top_k_64": (SoftStepConfig(top_k=64, top_p=0.99, max_topk=64, gumbel_tau=1.0), 1.0),
}


def logits_for(B, V, scale, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, V, generator=g) * scale).to(dtype).to(DEV)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_soft_step_matches_reference(name):
    cfg, scale = CONFIGS[name]
    B, V, d = 3, 1003, 48
    z = logits_for(B, V, scale, seed=len(name))
    emb = torch.randn(V, d, device=DEV)
    sample = torch.tensor([0, 5, 2], device=DEV)
    step = torch.tensor([7, 0, 123], device=DEV)
    ref = soft_token_step(z, cfg, 1234567, sample, step, emb)
    out = soft_token_step_triton(z, cfg, 1234567, sample, step, emb)
    assert torch.equal(out.ids.cpu(), ref.ids.cpu())
    assert torch.equal(out.emitted.cpu(), ref.emitted.cpu())
    torch.testing.assert_close(out.gp, ref.gp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.weights, ref.weights, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.entropy, ref.entropy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mixed, ref.mixed, atol=1e-5, rtol=1e-5)


def test_soft_step_bf16_logits_and_embedding():
    cfg = CONFIGS["softgrpo_defaults"][0]
    z = logits_for(5, 777, 3.0, torch.bfloat16, seed=3)
    emb = torch.randn(777, 40, device=DEV).to(torch.bfloat16)
    sample, step = torch.arange(5, device=DEV), torch.full((5,), 9, device=DEV)
    ref = soft_token_step(z, cfg, 99, sample, step, emb)
    out = soft_token_step_triton(z, cfg, 99, sample, step, emb)
    assert torch.equal(out.ids.cpu(), ref.ids.cpu())
    assert torch.equal(out.emitted.cpu(), ref.emitted.cpu())
    torch.testing.assert_close(out.gp, ref.gp, atol=1e-5, rtol=1e-5)
    assert out.mixed.dtype == torch.bfloat16
    # the reference mixes in bf16, the kernel in float32 then rounds once: within bf16 tolerance
    torch.testing.assert_close(out.mixed.float(), ref.mixed.float(), atol=2e-2, rtol=2e-2)


def test_noise_off_emits_the_most_likely_token_and_ties_go_to_lower_id():
    z = torch.zeros(2, 300, device=DEV)
    z[0, 17] = z[0, 250] = 5.0  # tie between ids 17 and 250
    z[1, 42] = 9.0
    cfg = SoftStepConfig(noise_scale=0.0, top_p=1.0)
    sample, step = torch.zeros(2, dtype=torch.long, device=DEV), torch.zeros(2, dtype=torch.long, device=DEV)
    ref = soft_token_step(z, cfg, 0, sample, step)
    out = soft_token_step_triton(z, cfg, 0, sample, step)
    assert out.emitted.tolist() == [17, 42] == ref.emitted.tolist()
    assert torch.equal(out.ids.cpu(), ref.ids.cpu())
    assert out.mixed is None


@pytest.mark.parametrize("temperature,top_k,top_p,min_p", [(0.0, 0, 1.0, 0.0), (0.7, 20, 0.9, 0.0),
                                                            (1.0, 5, 1.0, 0.1), (1.5, 12, 0.5, 0.0)])
def test_discrete_step_matches_reference(temperature, top_k, top_p, min_p):
    B, V = 6, 1003
    z = logits_for(B, V, 2.0, seed=top_k)
    sample, step = torch.arange(B, device=DEV), torch.arange(B, device=DEV) * 3 + 1
    ref = discrete_step(z, temperature, top_k, top_p, min_p, 2**40 + 5, sample, step)
    out = discrete_step_triton(z, temperature, top_k, top_p, min_p, 2**40 + 5, sample, step)
    assert torch.equal(out.cpu(), ref.cpu())


def test_unsupported_filters_raise_instead_of_falling_back():
    z = logits_for(2, 100, 1.0)
    s = torch.zeros(2, dtype=torch.long, device=DEV)
    with pytest.raises(ValueError, match="top_k"):
        soft_token_step_triton(z, SoftStepConfig(top_k=0), 0, s, s)
    with pytest.raises(ValueError, match="top_k"):
        soft_token_step_triton(z, SoftStepConfig(top_k=65), 0, s, s)
    with pytest.raises(ValueError, match="top_k"):
        discrete_step_triton(z, 1.0, 0, 0.9, 0.0, 0, s, s)


def test_engine_step_returns_soft_and_discrete_results_entropy_and_logsumexp_from_one_pass():
    from softgrpo.kernels.philox_triton import key_tensor
    from softgrpo.kernels.soft_token_step import sampling_step
    from softgrpo.sampler import entropy_of, filtered_probs
    B, V = 4, 611
    z = logits_for(B, V, 2.0, torch.bfloat16, seed=8)
    cfg = SoftStepConfig(top_k=7, max_topk=3)
    sample, step = torch.arange(B, device=DEV), torch.full((B,), 4, device=DEV)
    inv_t = torch.tensor([1.0, 2.0, 0.5, 1.25], device=DEV)
    out = sampling_step(z, key_tensor(42, B, DEV), sample, step, cfg, (0.8, 9, 0.9, 0.0), answer_entropy=True,
                        inv_temperature=inv_t)
    ref = soft_token_step(z, cfg, 42, sample, step)
    assert torch.equal(out.soft.ids.cpu(), ref.ids.cpu())
    assert torch.equal(out.tokens.cpu(), discrete_step(z, 0.8, 9, 0.9, 0.0, 42, sample, step).cpu())
    torch.testing.assert_close(out.answer_entropy, entropy_of(filtered_probs(z, 0.8, 9, 0.9, 0.0)), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(out.lse, torch.logsumexp(z.float() * inv_t[:, None], dim=-1), atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="full-vocabulary size: GPU only")
def test_soft_step_matches_reference_at_qwen_vocabulary_on_gpu():
    B, V = 64, 151936
    z = logits_for(B, V, 3.0, torch.bfloat16, seed=21)
    emb = torch.randn(V, 1536, device=DEV).to(torch.bfloat16)
    sample, step = torch.arange(B, device=DEV), torch.full((B,), 11, device=DEV)
    for cfg in (SoftStepConfig(), CONFIGS["soft_thinking_defaults"][0]):
        ref = soft_token_step(z, cfg, 3, sample, step, emb)
        out = soft_token_step_triton(z, cfg, 3, sample, step, emb)
        assert torch.equal(out.ids, ref.ids) and torch.equal(out.emitted, ref.emitted)
        torch.testing.assert_close(out.gp, ref.gp, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.entropy, ref.entropy, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.mixed.float(), ref.mixed.float(), atol=2e-2, rtol=2e-2)
