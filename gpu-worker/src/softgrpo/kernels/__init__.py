"""Triton kernels for the SofT-GRPO hot paths, each with an explicit torch reference (see docs/CONTRACTS.md).

Selection is explicit: callers pass `backend="torch" | "triton"`; `require_triton()` raises when Triton cannot run
(no CUDA device and TRITON_INTERPRET unset), never a silent fallback.
"""
from __future__ import annotations

import os

import torch


def triton_available(device: torch.device | str | None = None) -> bool:
    """True when Triton kernels can run on `device`: a CUDA device, or any device under TRITON_INTERPRET=1."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    dev = torch.device(device) if device is not None else None
    return torch.cuda.is_available() and (dev is None or dev.type == "cuda")


def require_triton(device: torch.device | str | None = None) -> None:
    """Raise a clear error when the caller asked for the Triton backend and it cannot run here."""
    if not triton_available(device):
        raise RuntimeError(
            f"backend='triton' was requested but Triton cannot run on device {device!s}: it needs a CUDA device "
            "(or TRITON_INTERPRET=1 for the CPU interpreter). Pass backend='torch' to use the references."
        )


def check_backend(backend: str) -> str:
    if backend not in ("torch", "triton"):
        raise ValueError(f"backend must be 'torch' or 'triton', got {backend!r}")
    return backend


def soft_token_step_fn(backend: str):
    """The soft-token step for `backend`: sampler.soft_token_step ("torch") or the Triton kernel ("triton")."""
    if check_backend(backend) == "torch":
        from softgrpo.sampler import soft_token_step
        return soft_token_step
    require_triton()
    from softgrpo.kernels.soft_token_step import soft_token_step_triton
    return soft_token_step_triton


def policy_logprob_fn(backend: str):
    """(hidden [N,d], lm_head [V,d], ids, gp, tokens, is_soft, temperature, reduce) -> [N] log pi, for `backend`:
    "torch" materialises hidden @ lm_head.T and calls loss.policy_logprob; "triton" is the fused kernel."""
    if check_backend(backend) == "torch":
        from softgrpo.loss import policy_logprob

        def torch_policy_logprob(hidden, lm_head, ids, gp, tokens, is_soft, temperature, reduce="mean"):
            return policy_logprob(hidden @ lm_head.T, ids, gp, tokens, is_soft, temperature, reduce)
        return torch_policy_logprob
    require_triton()
    from softgrpo.kernels.fused_policy_logprob import fused_policy_logprob
    return fused_policy_logprob


def gathered_logits_fn(backend: str):
    """(hidden [N,d], lm_head [V,d], ids [N,k], tokens [N], soft_rows [N] bool, temperature) -> (zg [N,k], lse [N]),
    the input of every registered loss (softgrpo.loss): "torch" materialises hidden @ lm_head.T / temperature and
    gathers (loss.gathered_logits); "triton" is kernel 2 (kernels.fused_policy_logprob.fused_gathered_logits), which
    never materialises the [N, V] logits."""
    if check_backend(backend) == "torch":
        from softgrpo.loss import gathered_logits

        def torch_gathered_logits(hidden, lm_head, ids, tokens, soft_rows, temperature):
            return gathered_logits((hidden @ lm_head.T) / temperature, ids, tokens, soft_rows)
        return torch_gathered_logits
    require_triton()
    from softgrpo.kernels.fused_policy_logprob import fused_gathered_logits
    return fused_gathered_logits


def __getattr__(name):
    # the contract's names, imported lazily (importing Triton kernels needs no GPU, but keeps `import softgrpo`
    # light and avoids an import cycle with the kernel modules, which import the helpers above)
    if name in ("soft_token_step_triton", "discrete_step_triton", "sampling_step"):
        from softgrpo.kernels import soft_token_step as m
        return getattr(m, name)
    if name == "fused_policy_logprob":
        from softgrpo.kernels.fused_policy_logprob import fused_policy_logprob
        return fused_policy_logprob
    raise AttributeError(name)
