"""Per-step policy log-probabilities (the loss registry) and the GRPO objective around them (SOFT_GRPO.md s.2, s.3).

Every loss scores the M response steps of a batch from *gathered* logits, so the torch reference and Triton kernel 2
share one code path:

    zg  [M, k]  logits / tau at the step's stored slot ids (soft rows), or at its token in slot 0 (token rows)
    lse [M]     logsumexp of logits / tau over the vocabulary (token rows; soft rows never need it)

A soft step stored (ids [k], gp [k], kept [k], edge [k]): `kept` marks the slots the rollout's filters kept (top-k /
top-p / min-p), `edge` marks noise values sitting on a clamp bound (-1 lower, +1 upper). The Gumbel noise theta would
have needed is h_i = gp_i - log(q_i(theta) + 1e-6) with q renormalised over the KEPT slots, so h == g exactly at
theta_old. One helper (`gumbel_slot_logdensity`) computes the per-slot log-likelihood for every Gumbel variant:

    interior slot   -h - exp(-h), h clamped to [-1.5, 3]            (the published formula)
    edge slot       "clamp": the constant density at the bound (no gradient: decided by the stored flag, never by
                    float rounding);  "censored": log P(G >= h) = log(1 - exp(-e^-h)) at the upper bound,
                    log P(G <= h) = -e^-h at the lower bound, h unclamped (the exact likelihood of the clamped noise)

LOSSES is the dispatch path: each entry says which rollouts it scores, whether soft steps are scored as soft, and
its per-step function; `train` calls it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from softgrpo.philox import GUMBEL_MAX, GUMBEL_MIN
from softgrpo.sampler import Q_EPS

MASK_LOG_Q = -3.0  # M_i = [log q_i > -3] (the reference verl actor's threshold)
ADV_EPS = 1e-6
LOG_RATIO_LIMIT = 20.0  # |log r| clamp before exp, as verl does, so one wild token cannot overflow
KL_LIMIT = 10.0  # verl clamps the k3 estimator to [-10, 10]


class StepData(NamedTuple):
    """What a loss reads about the M steps it scores (besides the gathered logits). Shapes: k slots, d model width."""
    gp: torch.Tensor  # [M, k] float32 perturbed log-probs (zeros for discrete steps)
    is_soft: torch.Tensor  # [M] bool
    kept: torch.Tensor | None = None  # [M, k] bool, slots the rollout's filters kept (None: all)
    edge: torch.Tensor | None = None  # [M, k] int8, -1 / +1 noise on the lower / upper clamp bound (None: none)
    ids: torch.Tensor | None = None  # [M, k] int64 (soft_gaussian: the mixed ids)
    weights: torch.Tensor | None = None  # [M, k] the mixture the step fed forward (soft_gaussian: q_old)
    offset: torch.Tensor | None = None  # [M, d] Gaussian noise added to the fed embedding (soft_gaussian)
    noise_std: torch.Tensor | None = None  # [M] sigma of that noise (soft_gaussian)


# ---- gathered logits (the torch reference of kernel 2's gather) --------------------------------------------------
def gathered_logits(scaled_logits: torch.Tensor, ids: torch.Tensor, tokens: torch.Tensor,
                    soft_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(zg [M, k], lse [M]) from scaled logits [M, V] (already divided by tau): soft rows gather their stored ids,
    token rows their token in every slot (only slot 0 is read)."""
    logits = scaled_logits.float()
    gather_ids = torch.where(soft_rows[:, None], ids, tokens.view(-1, 1).expand_as(ids))
    return logits.gather(-1, gather_ids), torch.logsumexp(logits, dim=-1)


# ---- the Gumbel density, one helper for every variant -------------------------------------------------------------
def kept_log_q(zg: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """log q_i(theta) [N, k]: the slots' softmax renormalised over the kept slots (-inf at the others)."""
    if kept is None:
        return zg - torch.logsumexp(zg, dim=-1, keepdim=True)
    masked = zg.masked_fill(~kept, float("-inf"))
    return masked - torch.logsumexp(masked, dim=-1, keepdim=True)


def gumbel_slot_logdensity(log_q: torch.Tensor, gp: torch.Tensor, edge: torch.Tensor | None,
                           edges: str = "clamp") -> torch.Tensor:
    """Per-slot log-likelihood [N, k] of the stored noise given log q(theta) [N, k] (see the module docstring).
    Slots outside the kept set get whatever finite value; reductions mask them out."""
    h_raw = gp.float() - torch.log(log_q.exp() + Q_EPS)
    h = h_raw.clamp(GUMBEL_MIN, GUMBEL_MAX)
    density = -h - torch.exp(-h)
    if edge is None:
        return density
    upper, lower = edge > 0, edge < 0
    if edges == "clamp":
        at_bound = torch.where(upper, GUMBEL_MAX, GUMBEL_MIN)
        return torch.where(upper | lower, -at_bound - torch.exp(-at_bound), density)
    if edges != "censored":
        raise ValueError(f"edges must be 'clamp' or 'censored', got {edges!r}")
    # evaluate each branch on safe inputs so torch.where never mixes a NaN gradient in
    h_up = torch.where(upper, h_raw, torch.ones_like(h_raw))
    h_low = torch.where(lower, h_raw, torch.ones_like(h_raw))
    log_upper = torch.log(-torch.expm1(-torch.exp(-h_up)))  # log P(G >= h)
    log_lower = -torch.exp(-h_low)  # log P(G <= h)
    return torch.where(upper, log_upper, torch.where(lower, log_lower, density))


def gumbel_reduce(log_q: torch.Tensor, slot_logdensity: torch.Tensor, kept: torch.Tensor | None,
                  reduce: str) -> torch.Tensor:
    """[N] from per-slot terms: "mean" = sum_i M_i l_i / sum_i M_i with M_i = kept_i & [log q_i > -3] (theta's mask,
    no gradient through it), "sum" = sum over the kept slots."""
    kept = torch.ones_like(log_q, dtype=torch.bool) if kept is None else kept
    terms = torch.where(kept, slot_logdensity, torch.zeros_like(slot_logdensity))
    if reduce == "sum":
        return terms.sum(dim=-1)
    if reduce != "mean":
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    mask = (kept & (log_q > MASK_LOG_Q)).float()
    return (mask * terms).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)


def emitted_slot_log_q(log_q: torch.Tensor, gp: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """log q_I(theta) [N] of the emitted slot I = argmax_i gp_i (the Gumbel-max sample among the kept slots)."""
    scores = gp if kept is None else gp.masked_fill(~kept, float("-inf"))
    return log_q.gather(-1, scores.argmax(dim=-1, keepdim=True)).squeeze(-1)


def soft_logprob(zg: torch.Tensor, steps: StepData, reduce: str = "mean", edges: str = "clamp") -> torch.Tensor:
    """The Gumbel log-probability [N] of soft rows from their gathered logits zg [N, k] (all rows soft)."""
    log_q = kept_log_q(zg, steps.kept)
    return gumbel_reduce(log_q, gumbel_slot_logdensity(log_q, steps.gp, steps.edge, edges), steps.kept, reduce)


def _per_row(zg: torch.Tensor, lse: torch.Tensor, steps: StepData, soft_fn) -> torch.Tensor:
    """soft_fn(zg[soft], steps[soft]) on soft rows, zg[:, 0] - lse (the token log-prob) on the others."""
    soft = steps.is_soft.bool()
    out = zg[:, 0] - lse
    if bool(soft.any()):
        part = StepData(*[None if v is None else v[soft] for v in steps])
        out = out.index_put((soft,), soft_fn(zg[soft], part))
    return out


def policy_logprob_from_gathered(zg: torch.Tensor, lse: torch.Tensor, gp: torch.Tensor, is_soft: torch.Tensor,
                                 reduce: str = "mean", kept: torch.Tensor | None = None,
                                 edge: torch.Tensor | None = None) -> torch.Tensor:
    """The Gumbel variants (masked mean / sum, clamp edges) where is_soft, token log-prob elsewhere. zg: [N, k];
    lse: [N]; gp: [N, k]; is_soft: [N] bool; kept / edge: the stored slot flags. Returns [N] float32."""
    steps = StepData(gp=gp, is_soft=is_soft, kept=kept, edge=edge)
    return _per_row(zg, lse, steps, lambda z, s: soft_logprob(z, s, reduce))


def policy_logprob(logits: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor, tokens: torch.Tensor,
                   is_soft: torch.Tensor, temperature: float, reduce: str = "mean", kept: torch.Tensor | None = None,
                   edge: torch.Tensor | None = None) -> torch.Tensor:
    """policy_logprob_from_gathered on materialised logits [N, V] (the reference the kernels are tested against)."""
    zg, lse = gathered_logits(logits.float() / temperature, ids, tokens, is_soft.bool())
    return policy_logprob_from_gathered(zg, lse, gp, is_soft, reduce, kept, edge)


def gumbel_logprob(logits: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor, temperature: float,
                   reduce: str = "mean", kept: torch.Tensor | None = None,
                   edge: torch.Tensor | None = None) -> torch.Tensor:
    """The Gumbel log-probability [N] of soft steps from logits [N, V]."""
    zg = (logits.float() / temperature).gather(-1, ids)
    return soft_logprob(zg, StepData(gp=gp, is_soft=torch.ones(len(ids), dtype=torch.bool), kept=kept, edge=edge),
                        reduce)


def token_logprob(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(logits / temperature)[token]. logits: [N, V]; tokens: [N] int64. Returns [N] float32."""
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    return log_p.gather(-1, tokens.view(-1, 1)).squeeze(-1)


# ---- the registry ---------------------------------------------------------------------------------------------------
def soft_grpo_logprob(zg, lse, steps, embedding=None):
    """SofT-GRPO as published (Zheng & Lee, arXiv 2511.06411; the reference verl actor): soft steps score the masked
    MEAN of the Gumbel log-density over the kept slots (mask log q > -3 from the current theta), edge slots
    constant; `</think>` and answer tokens score log_softmax[token]."""
    return _per_row(zg, lse, steps, lambda z, s: soft_logprob(z, s, "mean", "clamp"))


def soft_grpo_sum_logprob(zg, lse, steps, embedding=None):
    """SofT-GRPO with the summed joint density: soft steps score sum_i l_i over the kept slots (the log-density of
    the independent Gumbel noises, no theta-dependent mask), edge slots constant. SOFT_GRPO.md s.5."""
    return _per_row(zg, lse, steps, lambda z, s: soft_logprob(z, s, "sum", "clamp"))


def soft_grpo_censored_logprob(zg, lse, steps, embedding=None):
    """The exact likelihood of the clamped noise: the summed density over interior slots plus the censored
    probability of each edge slot (log(1 - exp(-e^-h)) at the upper bound, -e^-h at the lower, h unclamped)."""
    return _per_row(zg, lse, steps, lambda z, s: soft_logprob(z, s, "sum", "censored"))


def soft_grpo_rb_logprob(zg, lse, steps, embedding=None):
    """Rao-Blackwellised SofT-GRPO (ours): a soft step scores log q_I(theta), the probability that the Gumbel-max
    picks the emitted slot I among the kept slots. It is E[joint Gumbel score | I] (the conditional expectation of
    the full-noise score given the emitted slot), so it drops the score of the residual noise, which moves the
    mixture by little at gumbel_tau 0.1 but dominates the variance. The rollout, the fed soft mixture and its
    gradient path into the embeddings are unchanged; biased only by what the residual does to the reward."""
    def soft_fn(z, s):
        return emitted_slot_log_q(kept_log_q(z, s.kept), s.gp, s.kept)
    return _per_row(zg, lse, steps, soft_fn)


def soft_gaussian_logprob(zg, lse, steps, embedding=None):
    """Gaussian-noise soft thinking (Butt et al., "Soft Tokens, Hard Truths", arXiv 2509.19170): the fed input is
    x = sum_i q_i E[ids_i] + sigma * eps over the kept top-k slots; a soft step scores the Gaussian log-density of
    the stored x around the mixture mu(theta) = sum_i q_i(theta) E[ids_i], -|x - mu|^2 / (2 sigma^2), plus log
    q_I(theta) of the emitted text token (which decides when thinking ends). Departs from the paper: the mixture is
    over the filtered top-k slots, not the full vocabulary."""
    if embedding is None:
        raise ValueError("soft_gaussian needs the input embedding matrix")

    def soft_fn(z, s):
        log_q = kept_log_q(z, s.kept)
        rows = embedding[s.ids].float()  # [N, k, d]
        mu = torch.einsum("nk,nkd->nd", log_q.exp(), rows)
        x = torch.einsum("nk,nkd->nd", s.weights.float(), rows.detach()) + s.offset.float()
        sigma2 = s.noise_std.float().clamp_min(1e-12) ** 2
        return emitted_slot_log_q(log_q, s.gp, s.kept) - ((x - mu) ** 2).sum(dim=-1) / (2 * sigma2)
    return _per_row(zg, lse, steps, soft_fn)


def grpo_logprob(zg, lse, steps, embedding=None):
    """Discrete-token GRPO (Shao et al. 2024, DeepSeekMath; the SofT-GRPO paper's baseline): every step scores
    log_softmax[token] of its sampled (or emitted) token."""
    return zg[:, 0] - lse


@dataclass(frozen=True)
class Loss:
    """A registered per-step log-probability: what the trainer needs to call it."""
    name: str
    step_logprob: Callable[..., torch.Tensor]  # (zg [M,k], lse [M], StepData, embedding [V,d] | None) -> [M]
    rollout: str  # the rollouts it scores: "soft" (Gumbel mixtures), "gaussian" (noisy embeddings), "discrete"
    scores_soft_steps: bool  # False: soft steps are scored by their emitted token's log-softmax (zg gathers tokens)
    needs_embedding: bool = False

    @property
    def doc(self) -> str:
        return " ".join((self.step_logprob.__doc__ or "").split())


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("soft_grpo", soft_grpo_logprob, "soft", True),
    Loss("soft_grpo_sum", soft_grpo_sum_logprob, "soft", True),
    Loss("soft_grpo_censored", soft_grpo_censored_logprob, "soft", True),
    Loss("soft_grpo_rb", soft_grpo_rb_logprob, "soft", True),
    Loss("soft_gaussian", soft_gaussian_logprob, "gaussian", True, needs_embedding=True),
    Loss("grpo", grpo_logprob, "discrete", False),
)}


# ---- the GRPO objective --------------------------------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """A_j = (R_j - mean(R)) / (std(R) + 1e-6) within each group. rewards: [P, G] -> [P, G].

    std is the unbiased sample std (torch.std), as verl's GRPO advantage computes it.
    """
    rewards = rewards.float()
    return (rewards - rewards.mean(dim=-1, keepdim=True)) / (rewards.std(dim=-1, keepdim=True) + ADV_EPS)


def low_var_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || pi_ref) per token: exp(ref - logp) - (ref - logp) - 1, clamped to [-10, 10]."""
    log_ratio = (ref_logp - logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(-KL_LIMIT, KL_LIMIT)


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor, n_tokens: float | None = None) -> torch.Tensor:
    """sum(values * mask) / n_tokens (default sum(mask)): token-mean aggregation; n_tokens lets micro-batches of
    one mini-batch share the mini-batch's denominator."""
    denominator = mask.sum() if n_tokens is None else torch.tensor(float(n_tokens))
    return (values * mask).sum() / denominator.clamp_min(1.0)


def grpo_objective(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
                   advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float, dual_clip: float, kl_beta: float,
                   n_tokens: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clip + dual clip policy loss plus beta * low-variance KL, token-mean aggregated.

    All tensors [N] over response tokens (mask [N] float, 1 = counted). Returns (loss, detached statistics).
    """
    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    ratio = torch.exp(log_ratio)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    loss_ppo = torch.maximum(loss_unclipped, loss_clipped)
    # dual clip (Ye et al. 2020): for A < 0 the loss is bounded by -A * c, so a huge ratio cannot dominate
    loss_dual = torch.minimum(loss_ppo, -advantages * dual_clip)
    pg_loss = torch.where(advantages < 0, loss_dual, loss_ppo)
    loss = masked_token_mean(pg_loss, mask, n_tokens)
    stats = {
        "pg_loss": loss.detach(),
        "clip_fraction": masked_token_mean((loss_clipped > loss_unclipped).float(), mask, n_tokens),
        "dual_clip_fraction": masked_token_mean(((advantages < 0) & (loss_ppo > -advantages * dual_clip)).float(),
                                                mask, n_tokens),
    }
    if ref_logp is not None and kl_beta > 0:
        kl = masked_token_mean(low_var_kl(logp, ref_logp), mask, n_tokens)
        loss = loss + kl_beta * kl
        stats["kl"] = kl.detach()
    elif ref_logp is not None:
        stats["kl"] = masked_token_mean(low_var_kl(logp, ref_logp), mask, n_tokens).detach()
    return loss, stats
