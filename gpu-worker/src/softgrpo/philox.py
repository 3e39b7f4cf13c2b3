"""Philox4x32-10 counter-based random numbers, vectorised in torch (the contract of docs/CONTRACTS.md).

Every random number the sampler draws is a pure function of (seed, sample, step, slot, stream), so a rollout, a
served request, the Triton kernel and the TypeScript engine all draw the same noise for the same coordinates, in any
batch order, with no generator state to carry around.

    key     = (seed & 0xffffffff, (seed >> 32) & 0xffffffff)        seed in [0, 2^53)
    counter = (c0 = slot, c1 = step, c2 = sample, c3 = stream)
    u       = ((x0 >> 8) + 0.5) / 2^24        x0 = output word 0; u in (0, 1), computed in float32
    g       = -log(-log(u)), clamped to [-1.5, 3] unless clamp=False (tests only)

torch has no uint32, so 32-bit words live in int64 tensors and every result is masked back to 32 bits. The 32x32
multiply is split into two 32x16 products so that no intermediate exceeds 2^48 (int64 would overflow at 2^63).
"""
from __future__ import annotations

import torch

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
MASK32 = 0xFFFFFFFF
MAX_SEED = 2**53

STREAM_GUMBEL = 0  # Gumbel noise of soft steps, slot i = candidate i
STREAM_DISCRETE = 1  # the uniform of a discrete sampling step, slot 0
STREAM_NORMAL_A, STREAM_NORMAL_B = 2, 3  # Box-Muller pair of soft_gaussian input noise, slot = embedding dimension

GUMBEL_MIN = -1.5
GUMBEL_MAX = 3.0


def _mulhilo(multiplier: int, word: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves of multiplier * word (word: int64 tensor holding uint32 values)."""
    word_lo = word & 0xFFFF
    word_hi = word >> 16
    prod_lo = multiplier * word_lo  # < 2^48
    prod_hi = multiplier * word_hi  # < 2^48; weight 2^16
    middle = ((prod_hi & 0xFFFF) << 16) + prod_lo  # < 2^49
    lo = middle & MASK32
    hi = (prod_hi >> 16) + (middle >> 32)
    return hi, lo


def philox4x32(key: tuple[int, int], counter: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> list[torch.Tensor]:
    """Philox4x32-10 (Random123 / Triton `tl.philox`).

    key: two uint32 Python ints. counter: four broadcastable int64 tensors of uint32 values (c0, c1, c2, c3).
    Returns four int64 tensors (the output words, uint32 values) of the broadcast shape.
    """
    device = next((c.device for c in counter if isinstance(c, torch.Tensor)), None)
    c0, c1, c2, c3 = torch.broadcast_tensors(*[torch.as_tensor(c, dtype=torch.int64, device=device) for c in counter])
    c0, c1, c2, c3 = (c & MASK32 for c in (c0, c1, c2, c3))
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for _ in range(PHILOX_ROUNDS):
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return [c0, c1, c2, c3]


def seed_key(seed: int) -> tuple[int, int]:
    """The Philox key of an integer seed in [0, 2^53)."""
    seed = int(seed)
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2^53), got {seed}")
    return seed & MASK32, (seed >> 32) & MASK32


def uniforms(seed: int, sample, step, slot, stream) -> torch.Tensor:
    """Uniforms in (0, 1), float32, one per broadcast (sample, step, slot, stream) coordinate.

    sample, step, slot, stream: ints or int64 tensors (broadcastable). Returns float32 of the broadcast shape.
    """
    x0 = philox4x32(seed_key(seed), (slot, step, sample, stream))[0]
    # (x0 >> 8) has 24 bits, exact in float32; adding 0.5 rounds (to nearest even) like the Triton kernel does.
    return ((x0 >> 8).to(torch.float32) + 0.5) * (1.0 / 2**24)


def gumbel(seed: int, sample, step, slot, stream=STREAM_GUMBEL, clamp: bool = True) -> torch.Tensor:
    """Gumbel(0, 1) noise -log(-log(u)), float32, clamped to [-1.5, 3] unless clamp=False (tests only)."""
    g = -torch.log(-torch.log(uniforms(seed, sample, step, slot, stream)))
    return g.clamp(GUMBEL_MIN, GUMBEL_MAX) if clamp else g


def normals(seed: int, sample, step, slot) -> torch.Tensor:
    """Standard normals (Box-Muller on streams 2 and 3), float32, one per broadcast (sample, step, slot)."""
    u1 = uniforms(seed, sample, step, slot, STREAM_NORMAL_A)
    u2 = uniforms(seed, sample, step, slot, STREAM_NORMAL_B)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
