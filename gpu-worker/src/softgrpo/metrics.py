"""Per-step summaries of rollouts and rewards, and Pass@k (SOFT_GRPO.md section 4)."""
from __future__ import annotations

from math import comb

import torch

from softgrpo.rollout import Rollout


def mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def rollout_summary(rollouts: list[Rollout], rewards: torch.Tensor) -> dict[str, float]:
    """Reward, length and entropy statistics of one batch of rollouts. rewards: [N] float."""
    steps = [len(r.tokens) for r in rollouts]
    entropies = torch.cat([r.entropy for r in rollouts]) if rollouts else torch.zeros(0)
    soft_steps = sum(int(r.is_soft.sum()) for r in rollouts)
    return {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "accuracy": float((rewards >= 1.0).float().mean()),  # graders give 1 for a correct answer
        "thinking_length": mean(r.n_thinking for r in rollouts),
        "answer_length": mean(r.n_answer for r in rollouts),
        "response_length": mean(steps),
        "soft_step_fraction": soft_steps / max(1, sum(steps)),
        "entropy": float(entropies.mean()) if entropies.numel() else 0.0,
        "thinking_capped_fraction": mean(r.thinking_end == "cap" for r in rollouts),
        "truncated_fraction": mean(r.finish_reason == "length" for r in rollouts),
    }


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k estimator 1 - C(n-c, k) / C(n, k) for c correct among n samples (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
