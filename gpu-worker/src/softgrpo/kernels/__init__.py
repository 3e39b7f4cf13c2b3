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
