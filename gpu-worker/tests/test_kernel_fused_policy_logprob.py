"""Kernel 2 (fused LM head + policy log-probability) against softgrpo.loss.policy_logprob on materialised logits,
forward and backward (gradients to hidden and lm_head), float32 tight and float64 reference.

Run: cd gpu-worker && TRITON_INTERPRET=1 .venv/bin/python -m pytest tests/test_kernel_fused_policy_logprob.py
"""
import pytest
import torch

from softgrpo.kernels import triton_available
from softgrpo.loss import policy_logprob

needs_triton = pytest.mark.skipif(not triton_available(), reason="needs CUDA or TRITON_INTERPRET=1")
if triton_available():
    from softgrpo.kernels.fused_policy_logprob import fused_policy_logprob

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def make_batch(N, V, d, k, soft_frac, seed, dtype=torch.float32):
    """Random hidden / head, soft rows with k distinct ids near the top of their logits (as a rollout stores them),
    gp = log q of those logits + clamped noise, discrete rows with a random token."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, d, generator=g) / d**0.25
    head = torch.randn(V, d, generator=g) / d**0.25
    logits = hidden @ head.T
    ids = torch.topk(logits + torch.randn(N, V, generator=g), k, dim=-1).indices  # plausible, distinct ids
    log_q = torch.log_softmax(logits.gather(-1, ids), dim=-1)
    gp = log_q + torch.empty(N, k).uniform_(-1.5, 3.0, generator=g)
    tokens = torch.randint(0, V, (N,), generator=g)
    is_soft = torch.rand(N, generator=g) < soft_frac
    disc_ids = torch.zeros(N, k, dtype=torch.long)
    disc_ids[:, 0] = tokens
    ids = torch.where(is_soft[:, None], ids, disc_ids)  # discrete rows store [tok, 0, ...], gp 0
    gp = torch.where(is_soft[:, None], gp, torch.zeros_like(gp))
    to = dict(device=DEV)
    return (hidden.to(dtype).to(**to).requires_grad_(), head.to(dtype).to(**to).requires_grad_(), ids.to(**to),
            gp.to(**to), tokens.to(**to), is_soft.to(**to))


def reference(hidden, head, ids, gp, tokens, is_soft, temperature, reduce, dtype):
    h = hidden.detach().to(dtype).requires_grad_()
    w = head.detach().to(dtype).requires_grad_()
    out = policy_logprob(h @ w.T, ids, gp, tokens, is_soft, temperature, reduce)
    return out, h, w


@needs_triton
@pytest.mark.parametrize("reduce", ["mean", "sum"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_forward_and_backward_match_reference_fp32(reduce, temperature):
    N, V, d, k = 37, 1003, 48, 5
    hidden, head, ids, gp, tokens, is_soft = make_batch(N, V, d, k, 0.6, seed=int(temperature * 10) + len(reduce))
    out = fused_policy_logprob(hidden, head, ids, gp, tokens, is_soft, temperature, reduce)
    ref, h, w = reference(hidden, head, ids, gp, tokens, is_soft, temperature, reduce, torch.float32)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    upstream = torch.randn(N, device=DEV)
    gh, gw = torch.autograd.grad((out * upstream).sum(), (hidden, head))
    rh, rw = torch.autograd.grad((ref * upstream).sum(), (h, w))
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rw, atol=1e-5, rtol=1e-5)


@needs_triton
def test_matches_float64_reference_and_backward_through_small_chunks():
    N, V, d, k = 29, 517, 40, 3
    hidden, head, ids, gp, tokens, is_soft = make_batch(N, V, d, k, 0.3, seed=7)
    # chunk_bytes small enough that the discrete-row backward runs several row chunks
    out = fused_policy_logprob(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean", chunk_bytes=16 * V * 4)
    ref, h, w = reference(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean", torch.float64)
    assert (out.double() - ref).abs().max() < 1e-5
    upstream = torch.randn(N, device=DEV, dtype=torch.float64)
    gh, gw = torch.autograd.grad((out.double() * upstream).sum(), (hidden, head))
    rh, rw = torch.autograd.grad((ref * upstream).sum(), (h, w))
    assert (gh.double() - rh).abs().max() < 1e-5
    assert (gw.double() - rw).abs().max() < 1e-5


@needs_triton
@pytest.mark.parametrize("soft_frac", [0.0, 1.0])
def test_all_soft_and_all_discrete_batches(soft_frac):
    N, V, d, k = 19, 300, 32, 4
    hidden, head, ids, gp, tokens, is_soft = make_batch(N, V, d, k, soft_frac, seed=11)
    out = fused_policy_logprob(hidden, head, ids, gp, tokens, is_soft, 1.0)
    ref, h, w = reference(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean", torch.float32)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    gh, gw = torch.autograd.grad(out.sum(), (hidden, head))
    rh, rw = torch.autograd.grad(ref.sum(), (h, w))
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rw, atol=1e-5, rtol=1e-5)


@needs_triton
def test_bf16_inputs_accumulate_in_fp32():
    N, V, d, k = 23, 611, 64, 5
    hidden, head, ids, gp, tokens, is_soft = make_batch(N, V, d, k, 0.5, seed=3, dtype=torch.bfloat16)
    out = fused_policy_logprob(hidden, head, ids, gp, tokens, is_soft, 1.0)
    assert out.dtype == torch.float32
    ref, h, w = reference(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean", torch.float64)
    # bf16 operands, float32 accumulation: errors of bf16 rounding of the products' inputs only
    rel = (out.double() - ref).norm() / ref.norm()
    assert rel < 1e-2, rel
    gh, gw = torch.autograd.grad(out.sum(), (hidden, head))
    assert gh.dtype == gw.dtype == torch.bfloat16
    rh, rw = torch.autograd.grad(ref.sum(), (h, w))
    assert (gh.double() - rh).norm() / rh.norm() < 2e-2
    assert (gw.double() - rw).norm() / rw.norm() < 2e-2


@needs_triton
def test_rejects_bad_arguments():
    hidden, head, ids, gp, tokens, is_soft = make_batch(4, 50, 16, 2, 0.5, seed=0)
    with pytest.raises(ValueError, match="reduce"):
        fused_policy_logprob(hidden, head, ids, gp, tokens, is_soft, 1.0, "max")
    with pytest.raises(ValueError, match="dtype"):
        fused_policy_logprob(hidden, head.double(), ids, gp, tokens, is_soft, 1.0)


def test_every_kernel_compiles_for_sm90_without_register_spills():
    """bench/compile_sm90.py compiles all Triton kernels for the H100 with Triton's bundled ptxas (no GPU needed):
    catches what the CPU interpreter forgives (non-constexpr globals, types the compiler rejects) and spills."""
    import os
    import pathlib
    import subprocess
    import sys
    import triton
    if not (pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists():
        pytest.skip("Triton's bundled ptxas is missing")
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # real compilation, not the interpreter
    proc = subprocess.run([sys.executable, str(root / "bench" / "compile_sm90.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    # exit code 0: no kernel spills beyond its budget (0 bytes, except the KP=64 finish kernel: 8, compile_sm90.py)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "over budget" not in proc.stdout


@needs_triton
def test_frozen_lm_head_gets_no_gradient_and_hidden_gradient_is_unchanged():
    N, V, d, k = 13, 150, 16, 3
    hidden, head, ids, gp, tokens, is_soft = make_batch(N, V, d, k, 0.5, seed=5)
    frozen = head.detach()
    out = fused_policy_logprob(hidden, frozen, ids, gp, tokens, is_soft, 1.0)
    (gh,) = torch.autograd.grad(out.sum(), (hidden,))
    ref, h, _ = reference(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean", torch.float32)
    (rh,) = torch.autograd.grad(ref.sum(), (h,))
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-5)
