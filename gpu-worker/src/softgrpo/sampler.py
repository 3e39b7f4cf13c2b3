"""Soft-thinking and discrete sampling steps: THE torch reference of SOFT_GRPO.md section 1 (float32).

The exact rules are fixed in docs/CONTRACTS.md "Sampling" so that this module, the Triton kernel
(softgrpo.kernels.soft_token_step_triton) and the TypeScript engine pick the same tokens for the same seed:

    p        = softmax(z / temperature), then top_k, top_p, min_p filters (renormalised after each)
    (q, ids) = topk(p, max_topk) (ties: lower id), q /= sum(q)
    gp_i     = log(q_i + 1e-6) + noise_scale * g_i          g from Philox stream 0, slot i
    weights  = softmax(gp / gumbel_tau)
    emitted  = ids[argmax_i gp_i] (ties: lower slot)         a Gumbel-max sample from q

A discrete step sorts the filtered p (stable by id) and inverts its cumulative sum at a Philox uniform
(stream 1, slot 0); temperature 0 is greedy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from softgrpo.philox import GUMBEL_MAX, GUMBEL_MIN, STREAM_DISCRETE, STREAM_GUMBEL, gumbel, uniforms

Q_EPS = 1e-6  # the epsilon inside log(q + 1e-6), shared with loss.gumbel_logprob


@dataclass(frozen=True)
class SoftStepConfig:
    temperature: float = 1.0
    top_k: int = 5
    top_p: float = 0.95
    min_p: float = 0.0
    max_topk: int = 5
    gumbel_tau: float = 0.1
    noise_scale: float = 1.0
    clamp_noise: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class SoftStep(NamedTuple):
    ids: torch.Tensor  # [B, k] int64, candidates in descending q order
    gp: torch.Tensor  # [B, k] float32, perturbed log-probabilities
    weights: torch.Tensor  # [B, k] float32, softmax(gp / gumbel_tau): the next input mixture
    emitted: torch.Tensor  # [B] int64, the text token
    entropy: torch.Tensor  # [B] float32, entropy of the filtered p (cold stop)
    mixed: torch.Tensor | None  # [B, d], sum_i weights_i * E[ids_i] when an embedding was given
    kept: torch.Tensor | None = None  # [B, k] bool: q_i > 0 (the slot survived the top_k / top_p / min_p filters)
    edge: torch.Tensor | None = None  # [B, k] int8: +1 / -1 where the Gumbel noise was clamped to 3 / -1.5, else 0


def _sort_descending(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort [B, V] descending; a stable sort keeps equal values in id order, so ties go to the lower id."""
    return torch.sort(p, dim=-1, descending=True, stable=True)


def _renormalise(p: torch.Tensor) -> torch.Tensor:
    return p / p.sum(dim=-1, keepdim=True)


def filtered_probs(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    """p = softmax(logits / temperature) with the top_k, top_p and min_p filters applied and renormalised.

    logits: [B, V] float. Returns [B, V] float32 summing to 1 per row; removed entries are exactly 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    p = torch.softmax(logits.float() / temperature, dim=-1)
    vocab = p.shape[-1]
    if 0 < top_k < vocab:
        _, order = _sort_descending(p)
        drop = order[:, top_k:]
        p = _renormalise(p.scatter(-1, drop, 0.0))
    if top_p < 1.0:
        sorted_p, order = _sort_descending(p)
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass strictly before each sorted position
        keep_sorted = before < top_p  # the shortest prefix reaching top_p; position 0 always kept
        keep_sorted[:, 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        p = _renormalise(torch.where(keep, p, torch.zeros_like(p)))
    if min_p > 0.0:
        threshold = min_p * p.max(dim=-1, keepdim=True).values
        p = _renormalise(torch.where(p >= threshold, p, torch.zeros_like(p)))
    return p


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    """-sum p log p over the last dimension, with 0 log 0 = 0. p: [B, V] -> [B]."""
    plogp = torch.where(p > 0, p * torch.log(p.clamp_min(1e-38)), torch.zeros_like(p))
    return -plogp.sum(dim=-1)


def soft_token_step(
    logits: torch.Tensor,
    cfg: SoftStepConfig,
    seed: int,
    sample: torch.Tensor,
    step: torch.Tensor,
    embedding: torch.Tensor | None = None,
) -> SoftStep:
    """One soft-thinking step per row.

    logits: [B, V]; sample, step: [B] int64 Philox coordinates (rollout index, generated-position index);
    embedding: [V, d] input-embedding matrix or None. Returns SoftStep (shapes in its definition).
    """
    p = filtered_probs(logits, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    k = cfg.max_topk
    sorted_p, order = _sort_descending(p)
    q, ids = sorted_p[:, :k], order[:, :k]
    kept = q > 0
    q = _renormalise(q)
    slots = torch.arange(k, dtype=torch.int64, device=logits.device)
    g = gumbel(seed, sample.long().to(logits.device).view(-1, 1), step.long().to(logits.device).view(-1, 1),
               slots.view(1, -1), STREAM_GUMBEL, clamp=cfg.clamp_noise)
    gp = torch.log(q + Q_EPS) + cfg.noise_scale * g
    edge = clamp_edges(g) if cfg.clamp_noise else torch.zeros_like(g, dtype=torch.int8)
    weights = torch.softmax(gp / cfg.gumbel_tau, dim=-1)
    emitted = ids.gather(-1, gp.argmax(dim=-1, keepdim=True)).squeeze(-1)  # argmax returns the first maximum
    mixed = None
    if embedding is not None:
        mixed = torch.einsum("bk,bkd->bd", weights.to(embedding.dtype), embedding[ids])
    return SoftStep(ids=ids, gp=gp, weights=weights, emitted=emitted, entropy=entropy_of(p), mixed=mixed, kept=kept,
                    edge=edge)


def clamp_edges(g: torch.Tensor) -> torch.Tensor:
    """int8 flags of clamped Gumbel noise g: +1 at the upper bound 3, -1 at the lower bound -1.5, 0 inside. Decided
    when the noise is drawn (clamp returns the bound exactly), so the loss never guesses it from rounding."""
    return (g >= GUMBEL_MAX).to(torch.int8) - (g <= GUMBEL_MIN).to(torch.int8)


def discrete_step(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    min_p: float,
    seed: int,
    sample: torch.Tensor,
    step: torch.Tensor,
) -> torch.Tensor:
    """One ordinary sampling step per row. logits: [B, V]; sample, step: [B] int64. Returns tokens [B] int64."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    p = filtered_probs(logits, temperature, top_k, top_p, min_p)
    sorted_p, order = _sort_descending(p)
    u = uniforms(seed, sample.long().to(logits.device), step.long().to(logits.device), 0, STREAM_DISCRETE)
    cumulative = torch.cumsum(sorted_p, dim=-1)
    first_reaching = (cumulative < u.view(-1, 1)).sum(dim=-1)  # index of the first cumsum >= u
    last_kept = (sorted_p > 0).sum(dim=-1) - 1  # rounding can leave the total just below u
    position = torch.minimum(first_reaching, last_kept)
    return order.gather(-1, position.view(-1, 1)).squeeze(-1)
