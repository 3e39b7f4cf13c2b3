"""The soft-thinking / discrete sampling reference against its contract, statistics and an independent float64
re-implementation of docs/CONTRACTS.md "Sampling" (what the TypeScript engine computes)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from softgrpo.philox import GUMBEL_MAX, GUMBEL_MIN, gumbel, uniforms
from softgrpo.sampler import SoftStepConfig, discrete_step, filtered_probs, soft_token_step

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores
VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "philox.json"


def filter_f64(logits, temperature, top_k, top_p, min_p):
    """The contract's filtering rules in float64 numpy, written without looking at the torch code."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    if 0 < top_k < len(p):
        for i in order[top_k:]:
            p[i] = 0.0
        p /= p.sum()
    if top_p < 1.0:
        order = sorted(range(len(p)), key=lambda i: (-p[i], i))
        total, keep = 0.0, set()
        for i in order:
            keep.add(i)
            total += p[i]
            if total >= top_p:
                break
        p = np.array([p[i] if i in keep else 0.0 for i in range(len(p))])
        p /= p.sum()
    if min_p > 0:
        p = np.where(p >= min_p * p.max(), p, 0.0)
        p /= p.sum()
    return p


def soft_step_f64(logits, cfg, seed, sample, step):
    p = filter_f64(logits, cfg["temperature"], cfg["top_k"], cfg["top_p"], cfg["min_p"])
    ids = sorted(range(len(p)), key=lambda i: (-p[i], i))[: cfg["max_topk"]]
    q = np.array([p[i] for i in ids])
    q /= q.sum()
    g = [float(gumbel(seed, sample, step, j, 0, clamp=cfg["clamp_noise"])) for j in range(len(ids))]
    gp = np.log(q + 1e-6) + cfg["noise_scale"] * np.array(g)
    w = np.exp((gp - gp.max()) / cfg["gumbel_tau"])
    return ids, gp, w / w.sum(), ids[int(np.argmax(gp))]


def discrete_f64(logits, cfg, seed, sample, step):
    if cfg["temperature"] == 0:
        return int(np.argmax(logits))
    p = filter_f64(logits, cfg["temperature"], cfg["top_k"], cfg["top_p"], cfg["min_p"])
    u = float(uniforms(seed, sample, step, 0, 1))
    order = [i for i in sorted(range(len(p)), key=lambda i: (-p[i], i)) if p[i] > 0]
    total = 0.0
    for i in order:
        total += p[i]
        if total >= u:
            return i
    return order[-1]


def one_row(logits, cfg, seed=1, sample=0, step=0, embedding=None):
    return soft_token_step(torch.tensor([logits], dtype=torch.float32), cfg, seed, torch.tensor([sample]),
                           torch.tensor([step]), embedding)


def test_shared_soft_step_vectors_match_torch_and_float64_reimplementation():
    for case in json.loads(VECTORS.read_text())["soft_step"]:
        cfg = case["config"]
        s = one_row(case["logits"], SoftStepConfig(**cfg), case["seed"], case["sample"], case["step"])
        assert s.ids[0].tolist() == case["ids"] and int(s.emitted[0]) == case["emitted"]
        assert np.allclose(s.gp[0].numpy(), case["gp"], atol=1e-5)
        assert np.allclose(s.weights[0].numpy(), case["weights"], atol=1e-5)
        ids, gp, w, emitted = soft_step_f64(case["logits"], cfg, case["seed"], case["sample"], case["step"])
        assert ids == case["ids"] and emitted == case["emitted"]
        assert np.allclose(gp, case["gp"], atol=1e-5) and np.allclose(w, case["weights"], atol=1e-5)


def test_shared_discrete_vectors_match_torch_and_float64_reimplementation():
    for case in json.loads(VECTORS.read_text())["discrete_step"]:
        cfg = case["config"]
        token = discrete_step(torch.tensor([case["logits"]]), cfg["temperature"], cfg["top_k"], cfg["top_p"],
                              cfg["min_p"], case["seed"], torch.tensor([case["sample"]]), torch.tensor([case["step"]]))
        assert int(token[0]) == case["token"]
        assert discrete_f64(case["logits"], cfg, case["seed"], case["sample"], case["step"]) == case["token"]


def test_filters_top_k_ties_go_to_lower_id_and_top_p_keeps_shortest_prefix():
    p = filtered_probs(torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]]), 1.0, top_k=2, top_p=1.0, min_p=0.0)
    assert (p[0] > 0).tolist() == [False, True, True, False, False]
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    p = filtered_probs(probs.log(), 1.0, top_k=0, top_p=0.8, min_p=0.0)
    assert (p[0] > 0).tolist() == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    p = filtered_probs(probs.log(), 1.0, top_k=0, top_p=0.81, min_p=0.0)
    assert (p[0] > 0).tolist() == [True, True, True, False]
    p = filtered_probs(probs.log(), 1.0, top_k=0, top_p=1.0, min_p=0.2)
    assert (p[0] > 0).tolist() == [True, True, True, False]  # 0.05 < 0.2 * 0.5
    assert torch.allclose(p.sum(), torch.tensor(1.0))


def test_gumbel_max_emitted_tokens_follow_q_without_clamp():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    cfg = SoftStepConfig(top_k=0, top_p=1.0, max_topk=6, clamp_noise=False)
    n = 6000
    s = soft_token_step(logits.expand(n, -1), cfg, seed=123, sample=torch.arange(n), step=torch.zeros(n, dtype=torch.long))
    q = torch.softmax(logits, dim=-1)
    counts = torch.bincount(s.emitted, minlength=6).double()
    expected = q.double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom, p = 0.001


def test_noise_is_clamped_so_gp_stays_within_log_q_plus_range():
    logits = torch.randn(512, 40, generator=torch.Generator().manual_seed(0))
    cfg = SoftStepConfig(top_k=0, top_p=1.0, max_topk=4, noise_scale=1.0)
    s = soft_token_step(logits, cfg, 5, torch.arange(512), torch.full((512,), 3))
    p = torch.softmax(logits, -1)
    q = p.gather(-1, s.ids)
    noise = s.gp - torch.log(q / q.sum(-1, keepdim=True) + 1e-6)
    assert float(noise.min()) >= GUMBEL_MIN - 1e-5 and float(noise.max()) <= GUMBEL_MAX + 1e-5
    assert float(noise.max()) > GUMBEL_MAX - 1e-4  # the clamp was actually hit


def test_zero_noise_is_plain_soft_thinking():
    logits = torch.randn(16, 30, generator=torch.Generator().manual_seed(1))
    cfg = SoftStepConfig(noise_scale=0.0, gumbel_tau=1.0)
    s = soft_token_step(logits, cfg, 77, torch.arange(16), torch.arange(16))
    p = filtered_probs(logits, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    q = p.gather(-1, s.ids)
    q = q / q.sum(-1, keepdim=True)
    assert torch.allclose(s.weights, (q + 1e-6) / (q + 1e-6).sum(-1, keepdim=True), atol=1e-6)
    assert torch.equal(s.emitted, s.ids[:, 0])


def test_seeds_reproduce_and_differ():
    logits = torch.randn(8, 30, generator=torch.Generator().manual_seed(2))
    cfg = SoftStepConfig(top_k=0, top_p=1.0, max_topk=8)
    a = soft_token_step(logits, cfg, 11, torch.arange(8), torch.zeros(8, dtype=torch.long))
    b = soft_token_step(logits, cfg, 11, torch.arange(8), torch.zeros(8, dtype=torch.long))
    c = soft_token_step(logits, cfg, 12, torch.arange(8), torch.zeros(8, dtype=torch.long))
    assert torch.equal(a.gp, b.gp) and torch.equal(a.emitted, b.emitted)
    assert not torch.equal(a.gp, c.gp)


def test_row_result_does_not_depend_on_batch_position():
    logits = torch.randn(6, 25, generator=torch.Generator().manual_seed(3))
    cfg = SoftStepConfig()
    batch = soft_token_step(logits, cfg, 4, torch.arange(6), torch.full((6,), 9))
    for i in range(6):
        single = soft_token_step(logits[i:i + 1], cfg, 4, torch.tensor([i]), torch.tensor([9]))
        assert torch.equal(single.ids[0], batch.ids[i]) and torch.equal(single.gp[0], batch.gp[i])


def test_mixed_embedding_is_weighted_sum_of_rows():
    embedding = torch.randn(30, 8, generator=torch.Generator().manual_seed(4))
    logits = torch.randn(3, 30, generator=torch.Generator().manual_seed(5))
    s = soft_token_step(logits, SoftStepConfig(), 1, torch.arange(3), torch.zeros(3, dtype=torch.long), embedding)
    for b in range(3):
        explicit = sum(float(s.weights[b, i]) * embedding[int(s.ids[b, i])] for i in range(s.ids.shape[1]))
        assert torch.allclose(s.mixed[b], explicit, atol=1e-6)


def test_entropy_is_of_filtered_p():
    logits = torch.tensor([[0.0, 0.0, -50.0, -50.0]])
    s = one_row(logits[0].tolist(), SoftStepConfig(top_k=2, top_p=1.0, max_topk=2))
    assert float(s.entropy[0]) == pytest.approx(math.log(2), abs=1e-6)


def test_discrete_sampling_follows_p_and_greedy_takes_lowest_tied_id():
    logits = torch.tensor([0.0, 1.0, 1.0, -1.0])
    n = 4000
    tokens = discrete_step(logits.expand(n, -1), 1.0, 0, 1.0, 0.0, 8, torch.arange(n), torch.zeros(n, dtype=torch.long))
    counts = torch.bincount(tokens, minlength=4).double()
    expected = torch.softmax(logits, -1).double() * n
    assert float(((counts - expected) ** 2 / expected).sum()) < 16.3  # 3 dof, p = 0.001
    greedy = discrete_step(logits.view(1, -1), 0.0, 0, 1.0, 0.0, 8, torch.tensor([0]), torch.tensor([0]))
    assert int(greedy[0]) == 1
