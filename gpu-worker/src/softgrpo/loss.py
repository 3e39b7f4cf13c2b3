"""Policy log-probabilities of soft and discrete steps, and the GRPO objective around them (SOFT_GRPO.md s.2, s.3).

A soft step stored (ids [k], gp [k]); its log-probability under the current logits z is the Gumbel log-density of
the noise theta would have needed to produce gp:

    q_i = softmax(z / tau)[ids_i] / sum_j softmax(z / tau)[ids_j]
    h_i = clamp(gp_i - log(q_i + 1e-6), -1.5, 3);   l_i = -h_i - exp(-h_i)
    mean: sum_i M_i l_i / sum_i M_i  with M_i = [log q_i > -3]        (the published SofT-GRPO method)
    sum:  sum_i l_i                                                  (the joint density of the k noises)

A discrete step's log-probability is log_softmax(z / tau)[token]. The gradient reaches theta only through q (soft)
or the token log-softmax (discrete); gp is data.

LOSSES names the per-step log-probability each method trains with; the PPO objective (`grpo_objective`) is shared.
"""
from __future__ import annotations

from typing import Callable

import torch

from softgrpo.philox import GUMBEL_MAX, GUMBEL_MIN
from softgrpo.sampler import Q_EPS

MASK_LOG_Q = -3.0  # M_i = [log q_i > -3] (the reference verl actor's threshold)
ADV_EPS = 1e-6
LOG_RATIO_LIMIT = 20.0  # |log r| clamp before exp, as verl does, so one wild token cannot overflow
KL_LIMIT = 10.0  # verl clamps the k3 estimator to [-10, 10]


def gumbel_logprob(logits: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor, temperature: float,
                   reduce: str = "mean") -> torch.Tensor:
    """Gumbel-reparameterised log-probability of soft steps.

    logits: [N, V]; ids: [N, k] int64; gp: [N, k]. Returns [N] float32 ("mean": masked mean, "sum": summed density).
    """
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    log_p_ids = log_p.gather(-1, ids)  # [N, k]
    log_q = log_p_ids - torch.logsumexp(log_p_ids, dim=-1, keepdim=True)  # renormalised over the k stored ids
    h = (gp.float() - torch.log(log_q.exp() + Q_EPS)).clamp(GUMBEL_MIN, GUMBEL_MAX)
    log_density = -h - torch.exp(-h)  # log of the Gumbel(0, 1) density at h
    if reduce == "sum":
        return log_density.sum(dim=-1)
    if reduce != "mean":
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    mask = (log_q > MASK_LOG_Q).float()  # depends on theta but carries no gradient itself
    return (mask * log_density).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)


def token_logprob(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(logits / temperature)[token]. logits: [N, V]; tokens: [N] int64. Returns [N] float32."""
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    return log_p.gather(-1, tokens.view(-1, 1)).squeeze(-1)


def policy_logprob(logits: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor, tokens: torch.Tensor,
                   is_soft: torch.Tensor, temperature: float, reduce: str = "mean") -> torch.Tensor:
    """gumbel_logprob where is_soft else token_logprob. Shapes: logits [N, V], ids/gp [N, k], tokens/is_soft [N]."""
    out = torch.zeros(logits.shape[0], dtype=torch.float32, device=logits.device)
    soft = is_soft.bool()
    if bool(soft.any()):
        out = out.index_put((soft,), gumbel_logprob(logits[soft], ids[soft], gp[soft], temperature, reduce))
    if bool((~soft).any()):
        out = out.index_put((~soft,), token_logprob(logits[~soft], tokens[~soft], temperature))
    return out


def policy_logprob_from_gathered(zg: torch.Tensor, lse: torch.Tensor, gp: torch.Tensor, is_soft: torch.Tensor,
                                 reduce: str = "mean") -> torch.Tensor:
    """policy_logprob from gathered, temperature-scaled logits.

    zg: [N, k] = (z / T)[ids] for soft rows and (z / T)[token] in slot 0 for discrete rows; lse: [N] logsumexp of
    z / T over the vocabulary (used by discrete rows only); gp: [N, k]; is_soft: [N] bool. Returns [N] float32.
    The full-vocabulary normaliser cancels in q = softmax(z)[ids] / sum softmax(z)[ids], so soft rows need only zg.
    """
    log_q = zg - torch.logsumexp(zg, dim=-1, keepdim=True)
    h = (gp.float() - torch.log(log_q.exp() + Q_EPS)).clamp(GUMBEL_MIN, GUMBEL_MAX)
    log_density = -h - torch.exp(-h)
    if reduce == "sum":
        soft_lp = log_density.sum(dim=-1)
    else:
        mask = (log_q > MASK_LOG_Q).float()
        soft_lp = (mask * log_density).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)
    return torch.where(is_soft, soft_lp, zg[:, 0] - lse)


# ---- the registry: which per-step log-probability a method trains with -------------------------------------------
def soft_grpo_logprob(logits, ids, gp, tokens, is_soft, temperature):
    """SofT-GRPO (Zheng & Lee, arXiv 2511.06411; reference verl actor of zz1358m/SofT-GRPO-master): soft steps
    score the masked MEAN of the Gumbel log-density over the k stored ids (mask log q > -3, from the current theta);
    discrete steps (`</think>`, answer tokens) score log_softmax[token]."""
    return policy_logprob(logits, ids, gp, tokens, is_soft, temperature, reduce="mean")


def soft_grpo_sum_logprob(logits, ids, gp, tokens, is_soft, temperature):
    """SofT-GRPO with the summed joint density: soft steps score sum_i l_i over all k ids, the log-density of the
    k independent Gumbel noises (no theta-dependent mask). Our variant, named in SOFT_GRPO.md s.5 for comparison."""
    return policy_logprob(logits, ids, gp, tokens, is_soft, temperature, reduce="sum")


def grpo_logprob(logits, ids, gp, tokens, is_soft, temperature):
    """Discrete-token GRPO (Shao et al. 2024, DeepSeekMath; the baseline of the SofT-GRPO paper): every step scores
    log_softmax[token] of the emitted/sampled token. Meant for discrete rollouts."""
    return token_logprob(logits, tokens, temperature)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "soft_grpo": soft_grpo_logprob,
    "soft_grpo_sum": soft_grpo_sum_logprob,
    "grpo": grpo_logprob,
}


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
