"""Kernel 1: the soft-token step (SOFT_GRPO.md section 1) from last-position logits in one pass over them.

Same signature and results as `softgrpo.sampler.soft_token_step` / `discrete_step` (docs/CONTRACTS.md "Sampling").

Why one pass suffices: with top_k > 0 every filter (top_k, then top_p and min_p on the renormalised p) keeps a
subset of the top_k largest logits, and after the top_k renormalisation the full-vocabulary softmax normaliser
cancels: p_i = exp(z_i/T) / sum_{j in top_k} exp(z_j/T). So the only work over V is selecting the top_k logits
(with their ids); everything else (top_p cumsum, min_p, entropy of the filtered p, max_topk selection, Gumbel
noise, tau_g softmax, emitted token, embedding mix) runs on <= 64 candidates per row.

    pass 1  _topk_partial_kernel  grid (B, S): each program streams its 1/S slice of the row once, keeping a running
                                  top-KP of 64-bit keys (float bits in the high word, ~id in the low word, so a
                                  plain integer max orders by logit and breaks ties to the lower id, as the
                                  reference's stable sort does). A block costs one max-reduction plus one per
                                  key that enters the running top-KP (no sort of the block).
                                  Optionally the same read also accumulates logsumexp(z / T_row) per slice, for
                                  the step's log-probability in the rollout engine.
    pass 2  _finish_kernel        grid (B,): merges the S*KP candidates, then the soft step (thinking config)
                                  and/or the discrete step (answer config, with the entropy of its filtered p),
                                  and the embedding mix over d.

Restriction (explicit, never a silent fallback): sampling with temperature > 0 needs 0 < top_k <= 64 (top_p over the
full vocabulary would need a full sort); max_topk <= 64. Greedy discrete steps (temperature 0) need no top_k.
Known difference from the reference: candidates are ranked by z while the reference sorts p = softmax(z/T) in
float32; two different logits whose p round to the same float32 may be ordered differently (ties in p). Values
of p are computed with the top_k normaliser instead of the full one: equal up to float32 rounding.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from softgrpo.kernels import require_triton
from softgrpo.kernels.philox_triton import key_tensor, philox_gumbel, philox_uniform
from softgrpo.sampler import Q_EPS, SoftStep, SoftStepConfig

MAX_TOPK = 64
INT64_MIN = -(2**63)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@triton.jit
def _pack(z, idx):
    """Order-preserving int64 key of (float32 z, id): larger z first, then lower id."""
    bits = z.to(tl.int32, bitcast=True)
    s = tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)  # signed-int order == float order
    return (s.to(tl.int64) << 32) | (0xFFFFFFFF - idx.to(tl.int64))


@triton.jit
def _unpack(key):
    hi = (key >> 32).to(tl.int32)
    bits = tl.where(hi >= 0, hi, hi ^ 0x7FFFFFFF)
    z = bits.to(tl.float32, bitcast=True)
    idx = 0xFFFFFFFF - (key & 0xFFFFFFFF)
    return z, idx


@triton.jit
def _insert(best, kth, keys, KP: tl.constexpr):
    """Insert into the running top-KP set `best` (unordered, min = kth) every key of `keys` larger than kth.

    One max-reduction per inserted key (keys are unique: they embed the id), so a block that holds no new
    candidate costs one reduction. Bitonic tl.topk would sort every block; this touches only the winners.
    """
    pos = tl.arange(0, KP)
    mx = tl.max(keys, axis=0)
    while mx > kth:
        slot = tl.min(tl.where(best == kth, pos, KP), axis=0)  # replace exactly one copy of the minimum
        best = tl.where(pos == slot, mx, best)
        kth = tl.min(best, axis=0)
        keys = tl.where(keys == mx, -9223372036854775808, keys)
        mx = tl.max(keys, axis=0)
    return best, kth


@triton.jit
def _topk_partial_kernel(logits_ptr, cand_ptr, invt_ptr, m_ptr, s_ptr, V, stride_b,
                         CHUNK: tl.constexpr, KP: tl.constexpr, BLOCK_V: tl.constexpr, LSE: tl.constexpr):
    """cand[b, s, :KP] = the top-KP keys (unordered) of logits[b, s*CHUNK:(s+1)*CHUNK]; INT64_MIN pads short
    slices. With LSE, also the running max m[b, s] and sum s[b, s] of exp(z * invt[b] - m) over the slice (the
    step's log-probability needs logsumexp(z / T) over the vocabulary: same read of the logits)."""
    b = tl.program_id(0)
    s = tl.program_id(1)
    nsplit = tl.num_programs(1)
    lo = s * CHUNK
    hi = lo + CHUNK
    best = tl.full([KP], -9223372036854775808, tl.int64)
    kth = tl.min(best, axis=0)
    row = logits_ptr + b.to(tl.int64) * stride_b
    if LSE:
        invt = tl.load(invt_ptr + b)
    else:
        invt = 1.0
    run_m = float("-inf")
    run_s = 0.0
    # constexpr trip count: one compile per vocabulary size (also what the CPU interpreter supports)
    for i in range(0, (CHUNK + BLOCK_V - 1) // BLOCK_V):
        offs = lo + i * BLOCK_V + tl.arange(0, BLOCK_V)
        m = (offs < hi) & (offs < V)
        z = tl.load(row + offs, mask=m, other=0.0).to(tl.float32)
        keys = tl.where(m, _pack(z, offs), -9223372036854775808)
        best, kth = _insert(best, kth, keys, KP)
        if LSE:
            zt = tl.where(m, z * invt, float("-inf"))
            new_m = tl.maximum(run_m, tl.max(zt, axis=0))
            safe_m = tl.where(new_m == float("-inf"), 0.0, new_m)
            run_s = run_s * tl.exp(run_m - safe_m) + tl.sum(tl.exp(zt - safe_m), axis=0)
            run_m = new_m
    tl.store(cand_ptr + (b * nsplit + s) * KP + tl.arange(0, KP), best)
    if LSE:
        tl.store(m_ptr + b * nsplit + s, run_m)
        tl.store(s_ptr + b * nsplit + s, run_s)


@triton.jit
def _sorted_topk(keys, KP: tl.constexpr):
    """The KP largest of `keys`, in descending order (KP max-extractions; KP <= 64 and keys are few)."""
    best = tl.full([KP], -9223372036854775808, tl.int64)
    best, kth = _insert(best, tl.min(best, axis=0), keys, KP)
    pos = tl.arange(0, KP)
    out = tl.full([KP], -9223372036854775808, tl.int64)
    for j in tl.static_range(KP):
        mx = tl.max(best, axis=0)
        out = tl.where(pos == j, mx, out)
        best = tl.where(best == mx, -9223372036854775808, best)
    return out


@triton.jit
def _filtered_probs(z, valid, temperature, top_k, top_p, min_p, KP: tl.constexpr):
    """Filtered, renormalised p over the KP candidates (descending z): the reference's filtered_probs restricted
    to the top_k set, which contains every token it keeps."""
    pos = tl.arange(0, KP)
    keep = valid & (pos < top_k)
    zt = z / temperature
    zmax = tl.max(tl.where(keep, zt, float("-inf")), axis=0)
    e = tl.where(keep, tl.exp(zt - zmax), 0.0)
    p = e / tl.sum(e, axis=0)
    if top_p < 1.0:
        before = tl.cumsum(p, axis=0) - p  # mass strictly before each (descending) position
        keep = keep & ((before < top_p) | (pos == 0))
        p = tl.where(keep, p, 0.0)
        p = p / tl.sum(p, axis=0)
    if min_p > 0.0:
        thr = min_p * tl.max(p, axis=0)
        keep = keep & (p >= thr)
        p = tl.where(keep, p, 0.0)
        p = p / tl.sum(p, axis=0)
    return p


@triton.jit
def _finish_kernel(cand_ptr, key_ptr, sample_ptr, step_ptr, emb_ptr, stride_e,
                   ids_ptr, gp_ptr, w_ptr, emitted_ptr, ent_ptr, mixed_ptr, stride_m, token_ptr, aent_ptr,
                   flags_ptr,
                   n_cand, D: tl.constexpr,
                   temperature, top_k, top_p, min_p, max_topk, gumbel_tau, noise_scale,
                   a_temperature, a_top_k, a_top_p, a_min_p,
                   KP: tl.constexpr, NC: tl.constexpr, MKP: tl.constexpr, ZC: tl.constexpr,
                   CLAMP: tl.constexpr, DO_SOFT: tl.constexpr, DO_MIX: tl.constexpr, DO_DISCRETE: tl.constexpr,
                   BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_c = tl.arange(0, NC)
    keys = tl.load(cand_ptr + b * n_cand + offs_c, mask=offs_c < n_cand, other=-9223372036854775808)
    best = _sorted_topk(keys, KP)
    z, idx = _unpack(best)
    valid = best != -9223372036854775808  # V may be smaller than KP
    k0 = tl.load(key_ptr + b * 2)
    k1 = tl.load(key_ptr + b * 2 + 1)
    sample = tl.load(sample_ptr + b)
    step = tl.load(step_ptr + b)
    pos = tl.arange(0, KP)

    if DO_SOFT:
        p = _filtered_probs(z, valid, temperature, top_k, top_p, min_p, KP)
        ent = -tl.sum(tl.where(p > 0, p * tl.log(tl.maximum(p, 1e-38)), 0.0), axis=0)
        tl.store(ent_ptr + b, ent)
        positive = p > 0  # a prefix of the candidates
        n_pos = tl.sum(positive.to(tl.int32), axis=0)
        j = tl.arange(0, MKP)
        jm = j < max_topk
        # slot j < n_pos: the j-th candidate (one-hot reduction: no dynamic register indexing)
        hit = (pos[None, :] == j[:, None]) & positive[None, :]
        q = tl.sum(tl.where(hit, p[None, :], 0.0), axis=1)
        id_pos = tl.sum(tl.where(hit, idx[None, :], 0), axis=1)
        # slot j >= n_pos: the reference's stable sort puts zero-p tokens in id order, so these are the smallest
        # ids outside the positive set: c is the r-th such id where r = c - #{positive ids < c}
        c = tl.arange(0, ZC)
        in_set = tl.sum((positive[None, :] & (idx[None, :] == c[:, None])).to(tl.int32), axis=1) > 0
        rank = c - tl.sum((positive[None, :] & (idx[None, :] < c[:, None])).to(tl.int32), axis=1)
        zhit = (~in_set)[None, :] & (rank[None, :] == (j - n_pos)[:, None])
        id_zero = tl.sum(tl.where(zhit, c[None, :].to(tl.int64), 0), axis=1)
        ids = tl.where(j < n_pos, id_pos, id_zero)
        q = tl.where(jm, q, 0.0)
        q = q / tl.sum(q, axis=0)
        g = philox_gumbel(j.to(tl.uint32), tl.zeros_like(j).to(tl.uint32) + step.to(tl.uint32),
                          tl.zeros_like(j).to(tl.uint32) + sample.to(tl.uint32), k0, k1, CLAMP)
        # slot flags for the loss, one int8 per slot: bit 0 kept (survived the filters), bit 1 / bit 2 the noise sits
        # on the upper / lower clamp bound (one store, so nothing extra stays live: KP=64 fits its registers)
        flags = (j < n_pos).to(tl.int8)
        if CLAMP:
            flags = flags | ((g >= 3.0).to(tl.int8) << 1) | ((g <= -1.5).to(tl.int8) << 2)
        tl.store(flags_ptr + b * max_topk + j, flags, mask=jm)
        gp = tl.log(q + 1e-6) + noise_scale * g
        gp = tl.where(jm, gp, float("-inf"))
        s = gp / gumbel_tau
        s = tl.exp(s - tl.max(s, axis=0))
        w = s / tl.sum(s, axis=0)
        gmax = tl.max(gp, axis=0)
        first = tl.min(tl.where(gp == gmax, j, MKP), axis=0)
        emitted = tl.sum(tl.where(j == first, ids, 0), axis=0)
        tl.store(ids_ptr + b * max_topk + j, ids, mask=jm)
        tl.store(gp_ptr + b * max_topk + j, gp, mask=jm)
        tl.store(w_ptr + b * max_topk + j, w, mask=jm)
        tl.store(emitted_ptr + b, emitted)
        if DO_MIX:
            # mixed = sum_j w_j E[ids_j]: k rows of E, accumulated in float32
            for d0 in range(0, D, BLOCK_D):
                od = d0 + tl.arange(0, BLOCK_D)
                em = tl.load(emb_ptr + ids[:, None] * stride_e + od[None, :],
                             mask=jm[:, None] & (od[None, :] < D), other=0.0).to(tl.float32)
                mix = tl.sum(em * w[:, None], axis=0)
                tl.store(mixed_ptr + b.to(tl.int64) * stride_m + od, mix.to(mixed_ptr.dtype.element_ty),
                         mask=od < D)

    if DO_DISCRETE:
        if a_temperature == 0.0:
            tok = tl.sum(tl.where(pos == 0, idx, 0), axis=0)  # greedy: largest logit, lowest id on ties
            tl.store(aent_ptr + b, 0.0)  # a point mass
        else:
            pa = _filtered_probs(z, valid, a_temperature, a_top_k, a_top_p, a_min_p, KP)
            tl.store(aent_ptr + b, -tl.sum(tl.where(pa > 0, pa * tl.log(tl.maximum(pa, 1e-38)), 0.0), axis=0))
            u = philox_uniform(tl.zeros_like(pos).to(tl.uint32), tl.zeros_like(pos).to(tl.uint32) + step.to(tl.uint32),
                               tl.zeros_like(pos).to(tl.uint32) + sample.to(tl.uint32), 1, k0, k1)
            u0 = tl.max(u, axis=0)  # every lane drew the same (slot 0) uniform
            cum = tl.cumsum(pa, axis=0)
            first_reaching = tl.sum((cum < u0).to(tl.int32), axis=0)
            last_kept = tl.sum((pa > 0).to(tl.int32), axis=0) - 1
            at = tl.minimum(first_reaching, last_kept)
            tok = tl.sum(tl.where(pos == at, idx, 0), axis=0)
        tl.store(token_ptr + b, tok)


def _check_sampling(temperature: float, top_k: int, what: str) -> None:
    if temperature <= 0:
        raise ValueError(f"{what}: temperature must be > 0 for sampling, got {temperature}")
    if not 0 < top_k <= MAX_TOPK:
        raise ValueError(
            f"{what}: the Triton sampling kernel needs 0 < top_k <= {MAX_TOPK} (it restricts top_p / min_p to the "
            f"top_k set instead of sorting the whole vocabulary); got top_k={top_k}. Use backend='torch'."
        )


def _splits(B: int, V: int, device: torch.device) -> int:
    """Slices per row so that B * S programs fill the GPU (about 4 per SM); 1..64, at least 4096 logits each."""
    if device.type != "cuda":
        return max(1, min(4, triton.cdiv(V, 512)))
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(64, triton.cdiv(4 * sms, B), triton.cdiv(V, 4096)))


class StepOutputs(NamedTuple):
    soft: SoftStep | None  # the soft step (thinking config), when asked
    tokens: torch.Tensor | None  # [B] int64 discrete-step tokens (answer config), when asked
    answer_entropy: torch.Tensor | None  # [B] float32 entropy of the answer-phase filtered p (0 when greedy)
    lse: torch.Tensor | None  # [B] float32 logsumexp(logits * inv_temperature) over the vocabulary


def sampling_step(logits: torch.Tensor, keys: torch.Tensor, sample: torch.Tensor, step: torch.Tensor,
                  soft: SoftStepConfig | None, answer: tuple[float, int, float, float] | None,
                  embedding: torch.Tensor | None = None, splits: int | None = None, answer_entropy: bool = False,
                  inv_temperature: torch.Tensor | None = None) -> StepOutputs:
    """Soft step (config `soft`) and/or discrete step (answer = (temperature, top_k, top_p, min_p)) from one read
    of the logits. Used by the rollout engine, where rows in thinking and answer phases share one launch.

    logits: [B, V] float (fp32/bf16/fp16); keys: [B, 2] int64 Philox key words per row; sample, step: [B] int64
    (contiguous); embedding: [V, d] or None; inv_temperature: [B] float32 or None (then no logsumexp). Returns
    StepOutputs. No host synchronisation: it can be captured in a CUDA graph.
    """
    require_triton(logits.device)
    if sample.stride(0) != 1 or step.stride(0) != 1 or keys.stride() != (2, 1):
        raise ValueError("sample, step and keys must be contiguous (an expand() of one value has stride 0)")
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got {tuple(logits.shape)}")
    logits = logits if logits.stride(-1) == 1 else logits.contiguous()
    B, V = logits.shape
    dev = logits.device
    ks = [1]
    if soft is not None:
        _check_sampling(soft.temperature, soft.top_k, "soft step")
        if not 1 <= soft.max_topk <= MAX_TOPK:
            raise ValueError(f"max_topk must be in 1..{MAX_TOPK}, got {soft.max_topk}")
        if soft.gumbel_tau <= 0:
            raise ValueError(f"gumbel_tau must be > 0, got {soft.gumbel_tau}")
        ks.append(soft.top_k)
    if answer is not None:
        at, ak, ap, amp = answer
        if at != 0:
            _check_sampling(at, ak, "discrete step")
            ks.append(ak)
    KP = max(2, _next_pow2(max(ks)))  # tl.join needs at least 2 lanes
    S = splits or _splits(B, V, dev)
    chunk = triton.cdiv(V, S)
    cand = torch.empty(B, S, KP, dtype=torch.int64, device=dev)
    BLOCK_V = 1024 if dev.type == "cuda" else 256
    lse = inv_temperature is not None
    if lse:
        invt = inv_temperature.to(device=dev, dtype=torch.float32).contiguous()
        m_part = torch.empty(B, S, dtype=torch.float32, device=dev)
        s_part = torch.empty(B, S, dtype=torch.float32, device=dev)
    else:
        invt = m_part = s_part = cand  # placeholders, never touched (LSE=False)
    _topk_partial_kernel[(B, S)](logits, cand, invt, m_part, s_part, V, logits.stride(0), CHUNK=chunk, KP=KP,
                                 BLOCK_V=BLOCK_V, LSE=lse, num_warps=4)
    k = soft.max_topk if soft is not None else 1
    ids = torch.empty(B, k, dtype=torch.int64, device=dev)
    gp = torch.empty(B, k, dtype=torch.float32, device=dev)
    w = torch.empty(B, k, dtype=torch.float32, device=dev)
    emitted = torch.empty(B, dtype=torch.int64, device=dev)
    flags = torch.empty(B, k, dtype=torch.int8, device=dev)
    ent = torch.empty(B, dtype=torch.float32, device=dev)
    tokens = torch.empty(B, dtype=torch.int64, device=dev)
    aent = torch.empty(B, dtype=torch.float32, device=dev)
    if embedding is not None:
        mixed = torch.empty(B, embedding.shape[1], dtype=embedding.dtype, device=dev)
        emb, d, stride_e = embedding, embedding.shape[1], embedding.stride(0)
        if embedding.stride(1) != 1:
            raise ValueError("embedding must be row-contiguous")
    else:
        mixed, emb, d, stride_e = w, w, 0, 0  # placeholders, never touched (DO_MIX=False)
    MKP = _next_pow2(k)
    sc = soft or SoftStepConfig()
    at, ak, ap, amp = answer if answer is not None else (1.0, 1, 1.0, 0.0)
    _finish_kernel[(B,)](
        cand, keys, sample, step, emb, stride_e,
        ids, gp, w, emitted, ent, mixed, mixed.stride(0), tokens, aent, flags,
        S * KP, d,
        float(sc.temperature), int(sc.top_k), float(sc.top_p), float(sc.min_p), int(k), float(sc.gumbel_tau),
        float(sc.noise_scale),
        float(at), int(ak), float(ap), float(amp),
        KP=KP, NC=_next_pow2(S * KP), MKP=MKP, ZC=_next_pow2(KP + MKP), CLAMP=bool(sc.clamp_noise),
        DO_SOFT=soft is not None, DO_MIX=embedding is not None and soft is not None,
        DO_DISCRETE=answer is not None, BLOCK_D=128,
        num_warps=4 if KP <= 16 else 8,  # sm_90 ptxas: KP=32 spills with 4 warps, KP=64 fits 8 (compile_sm90.py)
    )
    step_out = None
    if soft is not None:
        step_out = SoftStep(ids=ids, gp=gp, weights=w, emitted=emitted, entropy=ent,
                            mixed=mixed if embedding is not None else None, kept=(flags & 1).bool(),
                            edge=((flags >> 1) & 1) - ((flags >> 2) & 1))
    lse_out = None
    if lse:  # combine the S slices: a [B, S] reduction
        mx = m_part.max(dim=1).values
        lse_out = mx + torch.log((s_part * torch.exp(m_part - mx[:, None])).sum(dim=1))
    return StepOutputs(step_out, tokens if answer is not None else None,
                       aent if (answer is not None and answer_entropy) else None, lse_out)


def _coords(logits, seed, sample, step):
    B = logits.shape[0]
    dev = logits.device
    sample = sample.to(device=dev, dtype=torch.int64).reshape(-1).expand(B).contiguous()
    step = step.to(device=dev, dtype=torch.int64).reshape(-1).expand(B).contiguous()
    return key_tensor(seed, B, dev), sample, step


def soft_token_step_triton(logits: torch.Tensor, cfg: SoftStepConfig, seed: int, sample: torch.Tensor,
                           step: torch.Tensor, embedding: torch.Tensor | None = None) -> SoftStep:
    """Triton version of `softgrpo.sampler.soft_token_step` (same arguments, same SoftStep result).

    logits: [B, V]; sample, step: [B] int64; embedding: [V, d] or None -> mixed [B, d] in embedding.dtype.
    """
    keys, sample, step = _coords(logits, seed, sample, step)
    return sampling_step(logits, keys, sample, step, cfg, None, embedding).soft


def discrete_step_triton(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, min_p: float,
                         seed: int, sample: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Triton version of `softgrpo.sampler.discrete_step`. logits: [B, V]; returns tokens [B] int64."""
    keys, sample, step = _coords(logits, seed, sample, step)
    return sampling_step(logits, keys, sample, step, None, (temperature, top_k, top_p, min_p)).tokens


assert Q_EPS == 1e-6  # the kernel hard-codes the contract's epsilon in log(q + 1e-6)
