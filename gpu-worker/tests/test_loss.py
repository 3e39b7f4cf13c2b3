"""Gumbel log-density, token log-probs, the registry and the PPO/GRPO objective."""
import math

import pytest
import torch

from softgrpo.loss import (LOSSES, StepData, gathered_logits, grpo_objective, gumbel_logprob, gumbel_slot_logdensity,
                           group_advantages, kept_log_q, low_var_kl, policy_logprob, token_logprob)
from softgrpo.philox import GUMBEL_MAX, GUMBEL_MIN, gumbel
from softgrpo.sampler import SoftStepConfig, soft_token_step

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores


def sampled_soft_steps(n=32, vocab=20, seed=0):
    logits = torch.randn(n, vocab, generator=torch.Generator().manual_seed(seed)) * 2
    cfg = SoftStepConfig(top_k=0, top_p=1.0, max_topk=4)
    step = soft_token_step(logits, cfg, 3, torch.arange(n), torch.zeros(n, dtype=torch.long))
    return logits, step


def test_gumbel_logprob_at_the_rollout_logits_is_the_density_of_the_drawn_noise():
    logits, step = sampled_soft_steps()
    q = torch.softmax(logits, -1).gather(-1, step.ids)
    q = q / q.sum(-1, keepdim=True)
    noise = step.gp - torch.log(q + 1e-6)  # the clamped Gumbel draws
    density = -noise - torch.exp(-noise)
    mask = (q.log() > -3).float()
    expected_mean = (density * mask).sum(-1) / mask.sum(-1)
    assert torch.allclose(gumbel_logprob(logits, step.ids, step.gp, 1.0, "mean"), expected_mean, atol=1e-5)
    assert torch.allclose(gumbel_logprob(logits, step.ids, step.gp, 1.0, "sum"), density.sum(-1), atol=1e-5)


def test_gradient_reaches_only_the_logits_of_the_stored_ids():
    logits, step = sampled_soft_steps()
    logits = logits.clone().requires_grad_(True)
    gp = step.gp.clone().requires_grad_(True)
    gumbel_logprob(logits, step.ids, gp, 1.0).sum().backward()
    outside = torch.ones_like(logits, dtype=torch.bool).scatter(-1, step.ids, False)
    assert float(logits.grad[outside].abs().max()) < 1e-6  # renormalised q ignores every other logit
    assert float(logits.grad[~outside].abs().max()) > 1e-3


def test_temperature_divides_the_logits():
    logits, step = sampled_soft_steps()
    assert torch.allclose(gumbel_logprob(logits, step.ids, step.gp, 0.5), gumbel_logprob(logits * 2, step.ids, step.gp, 1.0))
    tokens = step.emitted
    assert torch.allclose(token_logprob(logits, tokens, 2.0), torch.log_softmax(logits / 2, -1).gather(-1, tokens[:, None])[:, 0])


def test_policy_logprob_picks_soft_or_token_per_row_and_registry_entries_differ():
    logits, step = sampled_soft_steps(n=8)
    is_soft = torch.tensor([True, False] * 4)
    got = policy_logprob(logits, step.ids, step.gp, step.emitted, is_soft, 1.0, "mean")
    assert torch.allclose(got[is_soft], gumbel_logprob(logits, step.ids, step.gp, 1.0)[is_soft])
    assert torch.allclose(got[~is_soft], token_logprob(logits, step.emitted, 1.0)[~is_soft])
    zg, lse = gathered_logits(logits, step.ids, step.emitted, is_soft)
    steps = StepData(gp=step.gp, is_soft=is_soft, kept=step.kept, edge=step.edge, ids=step.ids)
    values = {name: entry.step_logprob(zg, lse, steps) for name, entry in LOSSES.items()
              if not entry.needs_embedding}
    assert set(LOSSES) == {"soft_grpo", "soft_grpo_sum", "soft_grpo_censored", "soft_grpo_rb", "soft_gaussian", "grpo"}
    assert not torch.allclose(values["soft_grpo"], values["soft_grpo_sum"])
    for name in values:  # every entry scores the token rows alike
        assert torch.allclose(values[name][~is_soft], token_logprob(logits, step.emitted, 1.0)[~is_soft])
    assert all(entry.doc for entry in LOSSES.values())


def filtered_soft_steps(n=400, seed=0):
    """Soft steps under the reference filters (top_k 5, top_p 0.95): many rows keep fewer than k slots."""
    logits = torch.randn(n, 30, generator=torch.Generator().manual_seed(seed)) * 3
    cfg = SoftStepConfig(top_k=5, top_p=0.95, max_topk=5)
    return logits, soft_token_step(logits, cfg, 5, torch.arange(n), torch.zeros(n, dtype=torch.long))


def test_noise_recovered_at_theta_old_equals_the_drawn_noise_on_every_kept_slot():
    logits, step = filtered_soft_steps()
    assert (~step.kept).any() and step.kept[:, 0].all()  # top-p dropped some slots; slot 0 is always kept
    g = gumbel(5, torch.arange(400).view(-1, 1), torch.zeros(400, 1, dtype=torch.long), torch.arange(5).view(1, -1))
    log_q = kept_log_q(logits.gather(-1, step.ids), step.kept)
    h = step.gp - torch.log(log_q.exp() + 1e-6)
    torch.testing.assert_close(h[step.kept], g[step.kept], rtol=0, atol=2e-6)
    # renormalising over all k stored ids (the reference) recovers a different noise where top-p dropped slots
    h_all = step.gp - torch.log(kept_log_q(logits.gather(-1, step.ids), None).exp() + 1e-6)
    dropped_rows = (~step.kept).any(dim=1)
    assert ((h_all - g).abs()[step.kept & dropped_rows[:, None]] > 1e-3).float().mean() > 0.5


def test_edge_flags_mark_exactly_the_clamped_noise_and_clamp_edges_carry_no_gradient():
    logits, step = filtered_soft_steps()
    g_raw = gumbel(5, torch.arange(400).view(-1, 1), torch.zeros(400, 1, dtype=torch.long), torch.arange(5).view(1, -1),
                   clamp=False)
    assert torch.equal(step.edge, (g_raw > GUMBEL_MAX).to(torch.int8) - (g_raw < GUMBEL_MIN).to(torch.int8))
    assert (step.edge > 0).any() and (step.edge < 0).any()
    z = logits.gather(-1, step.ids).clone().requires_grad_(True)
    log_q = kept_log_q(z, step.kept)
    terms = gumbel_slot_logdensity(log_q, step.gp, step.edge, "clamp")
    edge_slot = (step.edge != 0) & step.kept
    grad = torch.autograd.grad(terms[edge_slot].sum(), z)[0]
    assert float(grad.abs().max()) == 0.0
    at_bound = torch.where(step.edge > 0, GUMBEL_MAX, GUMBEL_MIN)
    torch.testing.assert_close(terms[edge_slot], (-at_bound - torch.exp(-at_bound))[edge_slot])


def test_censored_edges_score_the_probability_of_the_clamped_tail():
    log_q = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    h = torch.tensor([[3.0, -1.5, 0.4]])
    gp = h + torch.log(log_q.exp() + 1e-6)
    terms = gumbel_slot_logdensity(log_q, gp, torch.tensor([[1, -1, 0]], dtype=torch.int8), "censored")
    expected = [math.log(1 - math.exp(-math.exp(-3.0))), -math.exp(1.5), -0.4 - math.exp(-0.4)]
    torch.testing.assert_close(terms[0], torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_rb_scores_the_emitted_slot_among_the_kept_slots():
    logits, step = filtered_soft_steps(n=50)
    zg, lse = gathered_logits(logits, step.ids, step.emitted, torch.ones(50, dtype=torch.bool))
    steps = StepData(gp=step.gp, is_soft=torch.ones(50, dtype=torch.bool), kept=step.kept, edge=step.edge)
    got = LOSSES["soft_grpo_rb"].step_logprob(zg, lse, steps)
    p = torch.softmax(logits, -1)
    kept_mass = (p.gather(-1, step.ids) * step.kept).sum(-1)
    torch.testing.assert_close(got, torch.log(p.gather(-1, step.emitted[:, None])[:, 0] / kept_mass))


def test_gaussian_step_is_the_density_of_the_stored_noise_plus_the_emitted_slot():
    torch.manual_seed(0)
    logits, step = filtered_soft_steps(n=6)
    embedding = torch.randn(30, 8)
    q = kept_log_q(logits.gather(-1, step.ids), step.kept).exp()
    eps, sigma = torch.randn(6, 8), 0.3
    steps = StepData(gp=step.gp, is_soft=torch.ones(6, dtype=torch.bool), kept=step.kept, edge=step.edge,
                     ids=step.ids, weights=q, offset=sigma * eps, noise_std=torch.full((6,), sigma))
    zg, lse = gathered_logits(logits, step.ids, step.emitted, torch.ones(6, dtype=torch.bool))
    got = LOSSES["soft_gaussian"].step_logprob(zg, lse, steps, embedding)
    rb = LOSSES["soft_grpo_rb"].step_logprob(zg, lse, steps)
    torch.testing.assert_close(got, rb - (eps ** 2).sum(-1) / 2, rtol=1e-5, atol=1e-5)


def test_group_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    adv = group_advantages(rewards)
    assert torch.allclose(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]) * (0.5 / (0.5773503 + 1e-6)), atol=1e-5)
    assert torch.equal(adv[1], torch.zeros(4))


def objective(logp, old, adv, clip_eps=0.2, dual_clip=3.0):
    logp = logp.clone().requires_grad_(True)
    loss, stats = grpo_objective(logp, old, None, adv, torch.ones_like(logp), clip_eps, dual_clip, 0.0)
    loss.backward()
    return loss.detach(), stats, logp.grad


def test_ratio_is_exactly_one_when_old_equals_current():
    logp = torch.randn(10)
    adv = torch.randn(10)
    loss, stats, grad = objective(logp, logp.clone(), adv)
    assert float(loss) == pytest.approx(float(-adv.mean()), abs=1e-7)
    assert float(stats["clip_fraction"]) == 0.0
    assert torch.allclose(grad, -adv / 10)


def test_clip_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, stats, grad = objective(logp, old, adv)
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0 are clipped (no gradient); 1.1 and 0.9 are inside
    assert grad[0] == 0 and grad[1] == 0 and grad[2] != 0 and grad[3] != 0
    assert float(stats["clip_fraction"]) == 0.5
    assert float(loss) == pytest.approx((-1.2 + 0.8 - 1.1 + 0.9) / 4, abs=1e-6)


def test_dual_clip_bounds_the_loss_of_negative_advantages():
    old = torch.zeros(2)
    logp = torch.log(torch.tensor([5.0, 2.0]))
    adv = torch.tensor([-1.0, -1.0])
    loss, stats, grad = objective(logp, old, adv)
    assert float(loss) == pytest.approx((3.0 + 2.0) / 2, abs=1e-6)  # 5 is capped at c = 3, 2 is not
    assert grad[0] == 0 and grad[1] != 0
    assert float(stats["dual_clip_fraction"]) == 0.5


def test_low_var_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logp = torch.randn(50)
    assert torch.equal(low_var_kl(logp, logp), torch.zeros(50))
    assert bool((low_var_kl(logp, logp + torch.randn(50)) > 0).all())
    kl = low_var_kl(torch.tensor([0.0]), torch.tensor([math.log(0.5)]))
    assert float(kl) == pytest.approx(0.5 - math.log(0.5) - 1, abs=1e-6)


def test_kl_term_adds_beta_times_token_mean_kl():
    logp, old, ref = torch.randn(6), torch.randn(6), torch.randn(6)
    adv, mask = torch.randn(6), torch.tensor([1.0, 1, 1, 0, 1, 1])
    without, _ = grpo_objective(logp, old, ref, adv, mask, 0.2, 3.0, 0.0)
    with_kl, stats = grpo_objective(logp, old, ref, adv, mask, 0.2, 3.0, 0.5)
    expected_kl = (low_var_kl(logp, ref) * mask).sum() / mask.sum()
    assert float(with_kl - without) == pytest.approx(0.5 * float(expected_kl), abs=1e-6)
    assert float(stats["kl"]) == pytest.approx(float(expected_kl), abs=1e-6)
