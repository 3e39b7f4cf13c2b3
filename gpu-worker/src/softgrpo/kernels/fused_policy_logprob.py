"""Kernel 2: fused LM head + policy log-probability (SOFT_GRPO.md section 2), forward and backward, without the
[N, V] logits.

    fused_policy_logprob(hidden [N, d], lm_head [V, d], ids [N, k], gp [N, k], tokens [N], is_soft [N] bool,
                         temperature, reduce) -> [N] float32
    reference: softgrpo.loss.policy_logprob(hidden @ lm_head.T, ids, gp, tokens, is_soft, temperature, reduce)

Why most rows need no pass over V at all: with z = h W^T / T,

    soft row:      log q_i = z_{ids_i} - logsumexp_j z_{ids_j}     (the full softmax normaliser cancels)
    discrete row:  log p(tok) = z_tok - logsumexp_v z_v

so a soft row needs only its k gathered logits (k dot products of length d), and only discrete rows (the
`</think>` and answer tokens) need the logsumexp over V. The op is split accordingly:

    _LMHeadGatherLSE (autograd Function) -> (zg [N, k] gathered logits / T, lse [N] for discrete rows, else 0)
        forward   _gather_logits_kernel  grid (N,): zg = (h . W[ids]) / T               O(N k d)
                  _lse_kernel            grid (M/BM, S): h_d W^T tiles with an online logsumexp per row, never
                                         stored; S slices of V combine on the host (S*M floats)   O(M V d)
        backward  _gather_grad_kernel    grid (N,): dh += sum_j c_j W[ids_j] / T; dW[ids_j] += c_j h / T (atomics)
                  discrete rows in row chunks: logits chunk [C, V] = h_c W^T (cuBLAS), in place
                  _softmax_grad_kernel: P = (dlse / T) * exp(z/T - lse) (d lse / d z = softmax), then
                  dh_c += P W and dW += P^T h_c (cuBLAS); only this chunk ([C, V], C from `chunk_bytes`) is live
    then the Gumbel log-density / token log-prob on [N, k] in plain torch (autograd does its small backward),
    with exactly the formulas of softgrpo.loss.

The one-hot parts of d log q / dz and d log p(tok) / dz flow through zg; only the softmax part of the logsumexp
touches all of V. Peak extra memory: a float32 dW accumulator [V, d] for low-precision weights, plus one [C, V]
chunk; the naive path holds [N, V] logits in float32 several times over.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from softgrpo.kernels import require_triton
from softgrpo.loss import policy_logprob_from_gathered


def _interpreting() -> bool:
    import os
    return os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _gather_logits_kernel(h_ptr, w_ptr, ids_ptr, out_ptr, stride_h, stride_w, inv_t,
                          K: tl.constexpr, KP: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[n, j] = (h[n] . W[ids[n, j]]) * inv_t, accumulated in float32."""
    n = tl.program_id(0)
    j = tl.arange(0, KP)
    jm = j < K
    ids = tl.load(ids_ptr + n * K + j, mask=jm, other=0).to(tl.int64)
    acc = tl.zeros([KP], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        od = d0 + tl.arange(0, BLOCK_D)
        dm = od < D
        h = tl.load(h_ptr + n.to(tl.int64) * stride_h + od, mask=dm, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + ids[:, None] * stride_w + od[None, :], mask=jm[:, None] & dm[None, :],
                    other=0.0).to(tl.float32)
        acc += tl.sum(w * h[None, :], axis=1)
    tl.store(out_ptr + n * K + j, acc * inv_t, mask=jm)


@triton.jit
def _gather_grad_kernel(h_ptr, w_ptr, ids_ptr, c_ptr, dh_ptr, dw_ptr, stride_h, stride_w, inv_t,
                        K: tl.constexpr, KP: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr):
    """Backward of _gather_logits_kernel for upstream c [N, k]: dh[n] += sum_j c_j W[ids_j] * inv_t (float32, one
    writer per row) and dW[ids_j] += c_j h[n] * inv_t (float32 atomics: rows share ids)."""
    n = tl.program_id(0)
    j = tl.arange(0, KP)
    jm = j < K
    ids = tl.load(ids_ptr + n * K + j, mask=jm, other=0).to(tl.int64)
    c = tl.load(c_ptr + n * K + j, mask=jm, other=0.0) * inv_t
    for d0 in range(0, D, BLOCK_D):
        od = d0 + tl.arange(0, BLOCK_D)
        dm = od < D
        m2 = jm[:, None] & dm[None, :]
        h = tl.load(h_ptr + n.to(tl.int64) * stride_h + od, mask=dm, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + ids[:, None] * stride_w + od[None, :], mask=m2, other=0.0).to(tl.float32)
        dh_old = tl.load(dh_ptr + n.to(tl.int64) * D + od, mask=dm, other=0.0)
        tl.store(dh_ptr + n.to(tl.int64) * D + od, dh_old + tl.sum(w * c[:, None], axis=0), mask=dm)
        tl.atomic_add(dw_ptr + ids[:, None] * D + od[None, :], c[:, None] * h[None, :], mask=m2)


@triton.jit
def _lse_kernel(h_ptr, w_ptr, rows_ptr, m_out, s_out, M, V, stride_h, stride_w, inv_t,
                D: tl.constexpr, V_PER_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """Per row r of the discrete subset (h rows = rows[r]) and slice s of V: running max m and sum_v exp(z_v - m) of
    z = h W^T * inv_t over v in the slice. The [BLOCK_M, BLOCK_N] logit tile lives in registers only."""
    pid_m = tl.program_id(0)
    s = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mm = offs_m < M
    rows = tl.load(rows_ptr + offs_m, mask=mm, other=0).to(tl.int64)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    s_i = tl.zeros([BLOCK_M], tl.float32)
    v_lo = s * V_PER_SPLIT
    for vb in range(0, V_PER_SPLIT, BLOCK_N):
        offs_n = v_lo + vb + tl.arange(0, BLOCK_N)
        nm = (offs_n < V) & (vb + tl.arange(0, BLOCK_N) < V_PER_SPLIT)
        acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
        for k0 in range(0, D, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            km = offs_k < D
            a = tl.load(h_ptr + rows[:, None] * stride_h + offs_k[None, :], mask=mm[:, None] & km[None, :],
                        other=0.0)
            b = tl.load(w_ptr + offs_n[None, :].to(tl.int64) * stride_w + offs_k[:, None],
                        mask=nm[None, :] & km[:, None], other=0.0)
            if UPCAST:  # the CPU interpreter's tl.dot mishandles bfloat16 operands (numpy has no bf16)
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")  # float32 inputs: no tf32 rounding
            else:
                acc = tl.dot(a, b, acc)
        z = tl.where(nm[None, :], acc * inv_t, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(z, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a slice with no valid column
        s_i = s_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(z - m_safe[:, None]), axis=1)
        m_i = m_new
    tl.store(m_out + s * M + offs_m, m_i, mask=mm)
    tl.store(s_out + s * M + offs_m, s_i, mask=mm)


@triton.jit
def _softmax_grad_kernel(z_ptr, lse_ptr, coef_ptr, V, stride_z, inv_t, BLOCK_V: tl.constexpr,
                         N_BLOCKS: tl.constexpr):
    """In place on a logits chunk: z[r, v] <- coef[r] * exp(z[r, v] * inv_t - lse[r]) (= dL/dz * T), float32 math."""
    r = tl.program_id(0)
    vb = tl.program_id(1)
    lse = tl.load(lse_ptr + r)
    coef = tl.load(coef_ptr + r)
    row = z_ptr + r.to(tl.int64) * stride_z
    for i in range(0, N_BLOCKS):
        offs = (vb * N_BLOCKS + i) * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        z = tl.load(row + offs, mask=m, other=0.0).to(tl.float32)
        p = coef * tl.exp(z * inv_t - lse)
        tl.store(row + offs, p.to(z_ptr.dtype.element_ty), mask=m)


def _lse_config(device: torch.device, dtype: torch.dtype):
    if device.type != "cuda":
        return dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=1)
    # sm_90 resource reports (bench/compile_sm90.py, ptxas -v): 128x128x64 with 8 warps spills ~650 B/thread,
    # 128x128x32 with 8 warps does not (255 registers, wgmma); float32 (parity checks) 64x64x32 with 8 warps.
    if dtype == torch.float32:
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=8, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, num_warps=8, num_stages=3)


def _lse_rows(hidden: torch.Tensor, lm_head: torch.Tensor, rows: torch.Tensor, inv_t: float) -> torch.Tensor:
    """logsumexp_v (hidden[rows] . lm_head[v]) * inv_t -> [M] float32, in one streaming pass over lm_head."""
    M = rows.numel()
    V, D = lm_head.shape
    cfg = _lse_config(hidden.device, hidden.dtype)
    interp = _interpreting()
    grid_m = triton.cdiv(M, cfg["BLOCK_M"])
    if hidden.device.type == "cuda":
        sms = torch.cuda.get_device_properties(hidden.device).multi_processor_count
        splits = max(1, min(triton.cdiv(2 * sms, grid_m), triton.cdiv(V, 4 * cfg["BLOCK_N"])))
    else:
        splits = min(4, triton.cdiv(V, cfg["BLOCK_N"]))
    v_per_split = triton.cdiv(triton.cdiv(V, splits), cfg["BLOCK_N"]) * cfg["BLOCK_N"]
    splits = triton.cdiv(V, v_per_split)
    m = torch.empty(splits, M, dtype=torch.float32, device=hidden.device)
    s = torch.empty(splits, M, dtype=torch.float32, device=hidden.device)
    _lse_kernel[(grid_m, splits)](hidden, lm_head, rows, m, s, M, V, hidden.stride(0), lm_head.stride(0), inv_t,
                                  D=D, V_PER_SPLIT=v_per_split, IEEE=hidden.dtype == torch.float32 or interp,
                                  UPCAST=interp and hidden.dtype != torch.float32, **cfg)
    mx = m.max(dim=0).values
    return mx + torch.log((s * torch.exp(m - mx)).sum(dim=0))


_warned_mm = False


def _mm_into_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b with a float32 result (cuBLAS accumulates low-precision inputs in float32 and writes float32)."""
    global _warned_mm
    if a.dtype == torch.float32:
        return a @ b
    if a.is_cuda:
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError) as e:  # an older torch / layout without the fp32-output GEMM
            if not _warned_mm:
                import warnings
                warnings.warn(f"torch.mm(out_dtype=float32) unavailable ({e}); rounding chunk products to "
                              f"{a.dtype} before the float32 accumulation")
                _warned_mm = True
            return (a @ b).float()
    return a.float() @ b.float()


class _LMHeadGatherLSE(torch.autograd.Function):
    """(hidden [N, d], lm_head [V, d], gather_ids [N, k], rows [M] of discrete rows) ->
    (zg [N, k] = hidden . lm_head[gather_ids] / T, lse [N]: logsumexp_v of hidden . lm_head / T on `rows`, else 0)."""

    @staticmethod
    def forward(ctx, hidden, lm_head, gather_ids, rows, temperature, chunk_bytes):
        N, D = hidden.shape
        K = gather_ids.shape[1]
        inv_t = 1.0 / temperature
        zg = torch.empty(N, K, dtype=torch.float32, device=hidden.device)
        _gather_logits_kernel[(N,)](hidden, lm_head, gather_ids, zg, hidden.stride(0), lm_head.stride(0), inv_t,
                                    K=K, KP=triton.next_power_of_2(K), D=D, BLOCK_D=min(128, triton.next_power_of_2(D)))
        lse = torch.zeros(N, dtype=torch.float32, device=hidden.device)
        lse_rows = None
        if rows.numel() > 0:
            lse_rows = _lse_rows(hidden, lm_head, rows, inv_t)
            lse[rows] = lse_rows
        ctx.save_for_backward(hidden, lm_head, gather_ids, rows, lse_rows if lse_rows is not None else lse)
        ctx.inv_t = inv_t
        ctx.chunk_bytes = chunk_bytes
        return zg, lse

    @staticmethod
    def backward(ctx, dzg, dlse):
        hidden, lm_head, gather_ids, rows, lse_rows = ctx.saved_tensors
        inv_t = ctx.inv_t
        N, D = hidden.shape
        V = lm_head.shape[0]
        K = gather_ids.shape[1]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # a frozen head (LoRA) skips dW
        dh = torch.zeros(N, D, dtype=torch.float32, device=hidden.device)
        dw = torch.zeros(V if need_w else 1, D, dtype=torch.float32, device=hidden.device)
        if dzg is not None and need_w:
            _gather_grad_kernel[(N,)](hidden, lm_head, gather_ids, dzg.float().contiguous(), dh, dw,
                                      hidden.stride(0), lm_head.stride(0), inv_t, K=K, KP=triton.next_power_of_2(K),
                                      D=D, BLOCK_D=min(128, triton.next_power_of_2(D)))
        elif dzg is not None:
            dh += torch.einsum("nk,nkd->nd", dzg.float() * inv_t, lm_head[gather_ids].float())
        if dlse is not None and rows.numel() > 0:
            coef = (dlse[rows].float() * inv_t).contiguous()  # d(z/T)/dz folded into the softmax weights
            elem = hidden.element_size()
            chunk = max(16, min(rows.numel(), ctx.chunk_bytes // max(1, V * elem)))
            BLOCK_V = 1024 if hidden.is_cuda else 256
            n_blocks = 8 if hidden.is_cuda else 2
            for c0 in range(0, rows.numel(), chunk):
                r = rows[c0:c0 + chunk]
                h_c = hidden[r]  # [C, d]
                logits = h_c @ lm_head.T  # [C, V] in the input dtype; the only V-wide buffer
                _softmax_grad_kernel[(r.numel(), triton.cdiv(V, BLOCK_V * n_blocks))](
                    logits, lse_rows[c0:c0 + chunk].contiguous(), coef[c0:c0 + chunk], V, logits.stride(0), inv_t,
                    BLOCK_V=BLOCK_V, N_BLOCKS=n_blocks)
                if need_h:
                    dh.index_add_(0, r, _mm_into_f32(logits, lm_head))
                if need_w:
                    dw += _mm_into_f32(logits.T, h_c)
                del logits
        return (dh.to(hidden.dtype) if need_h else None, dw.to(lm_head.dtype) if need_w else None,
                None, None, None, None)


def fused_gathered_logits(hidden: torch.Tensor, lm_head: torch.Tensor, ids: torch.Tensor, tokens: torch.Tensor,
                          soft_rows: torch.Tensor, temperature: float,
                          chunk_bytes: int = 1 << 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton version of `loss.gathered_logits(hidden @ lm_head.T / temperature, ids, tokens, soft_rows)`.

    hidden: [N, d], lm_head: [V, d] (float32, bfloat16 or float16; same dtype), ids: [N, k] int64, tokens: [N]
    int64, soft_rows: [N] bool. Returns (zg [N, k], lse [N]) float32, differentiable w.r.t. hidden and lm_head;
    lse is computed for token rows only (0 on soft rows, which never read it). chunk_bytes bounds the one [C, V]
    logits chunk that the backward of token rows materialises.
    """
    require_triton(hidden.device)
    if hidden.dtype != lm_head.dtype:
        raise ValueError(f"hidden and lm_head dtypes differ: {hidden.dtype} vs {lm_head.dtype}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hidden = hidden if hidden.stride(-1) == 1 else hidden.contiguous()
    lm_head = lm_head if lm_head.stride(-1) == 1 else lm_head.contiguous()
    soft = soft_rows.bool()
    # token rows gather only their token (every slot repeats it; only slot 0 is read, the others get zero gradient)
    gather_ids = torch.where(soft[:, None], ids, tokens.view(-1, 1)).to(torch.int64).contiguous()
    rows = torch.nonzero(~soft).view(-1)
    return _LMHeadGatherLSE.apply(hidden, lm_head, gather_ids, rows, float(temperature), int(chunk_bytes))


def fused_policy_logprob(hidden: torch.Tensor, lm_head: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor,
                         tokens: torch.Tensor, is_soft: torch.Tensor, temperature: float, reduce: str = "mean",
                         chunk_bytes: int = 1 << 30, kept: torch.Tensor | None = None,
                         edge: torch.Tensor | None = None) -> torch.Tensor:
    """Triton version of `loss.policy_logprob(hidden @ lm_head.T, ids, gp, tokens, is_soft, temperature, reduce)`:
    fused_gathered_logits, then the Gumbel log-density / token log-prob on [N, k] in plain torch."""
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    zg, lse = fused_gathered_logits(hidden, lm_head, ids, tokens, is_soft, temperature, chunk_bytes)
    return policy_logprob_from_gathered(zg, lse, gp, is_soft.bool(), reduce, kept, edge)
