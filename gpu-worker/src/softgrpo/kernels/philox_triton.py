"""Philox4x32-10 and the contract's uniform / Gumbel draws, as Triton device functions.

Bit-exact with docs/CONTRACTS.md (Random123 / `tl.philox` rounds): counter = (slot, step, sample, stream),
key = (seed & 0xffffffff, seed >> 32). Written out here instead of calling `tl.philox` because that takes the
key as one 64-bit seed scalar; our kernels take per-row keys from a tensor, so a CUDA graph captured once serves
every seed (the seed is data, not a launch argument).

`philox_uniform_host` runs the same device function from the host on tensors: tests compare it with the
Random123 known answers and with the torch implementation in `softgrpo.philox`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# tl.constexpr globals: the compiler (unlike the CPU interpreter) only lets @jit code read constexpr globals
PHILOX_M0 = tl.constexpr(0xD2511F53)
PHILOX_M1 = tl.constexpr(0xCD9E8D57)
PHILOX_W0 = tl.constexpr(0x9E3779B9)
PHILOX_W1 = tl.constexpr(0xBB67AE85)


@triton.jit
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 tensors (broadcastable); returns the four output words (uint32)."""
    c0 = c0.to(tl.uint32)
    c1 = c1.to(tl.uint32)
    c2 = c2.to(tl.uint32)
    c3 = c3.to(tl.uint32)
    k0 = k0.to(tl.uint32)
    k1 = k1.to(tl.uint32)
    for _ in tl.static_range(10):
        m0 = tl.full(c0.shape, PHILOX_M0, tl.uint32)
        m1 = tl.full(c2.shape, PHILOX_M1, tl.uint32)
        hi0 = tl.umulhi(m0, c0)
        lo0 = m0 * c0
        hi1 = tl.umulhi(m1, c2)
        lo1 = m1 * c2
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = k0 + tl.full(k0.shape, PHILOX_W0, tl.uint32)
        k1 = k1 + tl.full(k1.shape, PHILOX_W1, tl.uint32)
    return c0, c1, c2, c3


@triton.jit
def philox_uniform(slot, step, sample, stream: tl.constexpr, k0, k1):
    """u = ((x0 >> 8) + 0.5) / 2^24 in (0, 1), float32, exact; counter (slot, step, sample, stream)."""
    x0, _, _, _ = philox4x32_10(slot, step, sample, tl.zeros_like(slot) + stream, k0, k1)
    return ((x0 >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)


@triton.jit
def philox_gumbel(slot, step, sample, k0, k1, CLAMP: tl.constexpr):
    """Gumbel(0,1) from stream 0: -log(-log u), clamped to [-1.5, 3] when CLAMP (the contract's default)."""
    u = philox_uniform(slot, step, sample, 0, k0, k1)
    g = -tl.log(-tl.log(u))
    if CLAMP:
        g = tl.minimum(tl.maximum(g, -1.5), 3.0)
    return g


def seed_key(seed: int) -> tuple[int, int]:
    """Philox key words of a seed in [0, 2^53), as the contract fixes them."""
    if not 0 <= seed < 2**53:
        raise ValueError(f"seed must be an integer in [0, 2^53), got {seed}")
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


def key_tensor(seed: int | torch.Tensor, n: int, device) -> torch.Tensor:
    """Per-row key words [n, 2] int64 (values in [0, 2^32)) from one seed or a per-row seed tensor [n]."""
    if isinstance(seed, torch.Tensor):
        s = seed.to(device=device, dtype=torch.int64).reshape(-1).expand(n)
        return torch.stack([s & 0xFFFFFFFF, (s >> 32) & 0xFFFFFFFF], dim=1).contiguous()
    k0, k1 = seed_key(int(seed))
    return torch.tensor([[k0, k1]], dtype=torch.int64, device=device).expand(n, 2).contiguous()


@triton.jit
def _philox_host_kernel(cnt_ptr, key_ptr, out_ptr, u_ptr, g_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    c0 = tl.load(cnt_ptr + offs * 4 + 0, mask=m, other=0)
    c1 = tl.load(cnt_ptr + offs * 4 + 1, mask=m, other=0)
    c2 = tl.load(cnt_ptr + offs * 4 + 2, mask=m, other=0)
    c3 = tl.load(cnt_ptr + offs * 4 + 3, mask=m, other=0)
    k0 = tl.load(key_ptr + offs * 2 + 0, mask=m, other=0)
    k1 = tl.load(key_ptr + offs * 2 + 1, mask=m, other=0)
    x0, x1, x2, x3 = philox4x32_10(c0, c1, c2, c3, k0, k1)
    tl.store(out_ptr + offs * 4 + 0, x0.to(tl.int64), mask=m)
    tl.store(out_ptr + offs * 4 + 1, x1.to(tl.int64), mask=m)
    tl.store(out_ptr + offs * 4 + 2, x2.to(tl.int64), mask=m)
    tl.store(out_ptr + offs * 4 + 3, x3.to(tl.int64), mask=m)
    u = ((x0 >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    tl.store(u_ptr + offs, u, mask=m)
    tl.store(g_ptr + offs, -tl.log(-tl.log(u)), mask=m)


def philox_host(counter: torch.Tensor, key: torch.Tensor):
    """Run the device Philox on counters [n, 4] and keys [n, 2] (int64 holding uint32 values).

    Returns (out [n, 4] int64 uint32 values, u [n] f32 from word 0, unclamped gumbel [n] f32).
    """
    counter = counter.to(torch.int64).contiguous()
    key = key.to(torch.int64).contiguous()
    n = counter.shape[0]
    out = torch.empty(n, 4, dtype=torch.int64, device=counter.device)
    u = torch.empty(n, dtype=torch.float32, device=counter.device)
    g = torch.empty(n, dtype=torch.float32, device=counter.device)
    BLOCK = 64
    _philox_host_kernel[(triton.cdiv(n, BLOCK),)](counter, key, out, u, g, n, BLOCK=BLOCK)
    return out, u, g
