"""Batched soft/discrete generation: reproducibility, phases, the cap, cold stop, batch independence, KV cache."""
import torch
import torch.nn as nn

from softgrpo.model import ModelOutput
from softgrpo.rollout import RolloutConfig, generate, left_pad, one_hot_slots
from softgrpo.sampler import SoftStepConfig
from softgrpo.loss import policy_logprob

import toy_model
from toy_model import EOS, THINK_END, ToyTokenizer

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores


def random_model(vocab=24, seed=0):
    return toy_model.random_model(vocab, seed, initializer_range=0.5)


class ScriptedLM(nn.Module):
    """Logits as a function of the generated position: script[t] = the token favoured at step t (logit +20)."""

    def __init__(self, prompt_len, script, vocab=16, favour=20.0):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.prompt_len, self.script, self.vocab, self.favour = prompt_len, script, vocab, favour

    def forward(self, ids, weights, attention_mask=None, past_key_values=None, use_cache=False, **_):
        step = attention_mask.shape[1] - self.prompt_len  # the generated position the last row predicts
        logits = torch.zeros(ids.shape[0], ids.shape[1], self.vocab)
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = self.favour
        return ModelOutput(logits=logits, past_key_values=[], hidden=None)


PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]
SOFT = RolloutConfig(mode="soft", thinking=SoftStepConfig(top_k=0, top_p=1.0, max_topk=4), answer_top_k=0,
                     answer_top_p=1.0, max_response_tokens=12, max_thinking_tokens=8)


def test_same_seed_reproduces_and_other_seed_differs():
    model = random_model()
    a = generate(model, ToyTokenizer(), PROMPTS, SOFT, seed=5)
    b = generate(model, ToyTokenizer(), PROMPTS, SOFT, seed=5)
    c = generate(model, ToyTokenizer(), PROMPTS, SOFT, seed=6)
    assert all(torch.equal(x.gp, y.gp) and torch.equal(x.tokens, y.tokens) for x, y in zip(a, b))
    assert any(not torch.equal(x.tokens, y.tokens) for x, y in zip(a, c))


def test_batched_rows_equal_single_row_generation():
    model = random_model()
    batch = generate(model, ToyTokenizer(), PROMPTS, SOFT, seed=9, samples=[4, 5, 6])
    assert any(r.is_soft.any() for r in batch)
    for row, prompt in enumerate(PROMPTS):
        single = generate(model, ToyTokenizer(), [prompt], SOFT, seed=9, samples=[4 + row])[0]
        assert torch.equal(single.tokens, batch[row].tokens) and torch.equal(single.ids, batch[row].ids)
        # padding changes float summation order: log(q + 1e-6) of a tiny q amplifies that to ~1e-4
        assert torch.allclose(single.gp, batch[row].gp, atol=1e-3)
        assert torch.allclose(single.logprob, batch[row].logprob, atol=1e-4)


def test_noise_off_thinking_is_deterministic_plain_soft_thinking():
    model = random_model()
    cfg = RolloutConfig(mode="soft", thinking=SoftStepConfig(noise_scale=0.0, max_topk=3), max_response_tokens=6,
                        max_thinking_tokens=6)
    a = generate(model, ToyTokenizer(), PROMPTS, cfg, seed=1)
    b = generate(model, ToyTokenizer(), PROMPTS, cfg, seed=2)
    for x, y in zip(a, b):
        soft = x.is_soft
        assert torch.equal(x.ids[soft], y.ids[soft]) and torch.equal(x.gp[soft], y.gp[soft])
        assert torch.equal(x.tokens[soft], x.ids[soft][:, 0])  # without noise the emitted token is the top one


def test_emitted_think_end_switches_to_discrete_answer_and_eos_stops():
    script = [7, 8, THINK_END, 9, 10, EOS, 11]
    rollouts = generate(ScriptedLM(5, script), ToyTokenizer(), [[1, 1, 1, 1, 1]], SOFT, seed=0)
    r = rollouts[0]
    assert r.tokens.tolist() == [7, 8, THINK_END, 9, 10, EOS]
    assert r.is_soft.tolist() == [True, True, False, False, False, False]
    assert r.ids[2].tolist() == [THINK_END, 0, 0, 0] and r.gp[2].abs().sum() == 0
    assert r.thinking_end == "emitted" and r.n_thinking == 3 and r.n_answer == 3
    assert r.finish_reason == "stop" and r.thinking_text == "7 8" and r.answer_text == "9 10"
    assert not r.forced.any()


def test_thinking_cap_forces_think_end_as_a_discrete_step():
    cfg = RolloutConfig(mode="soft", thinking=SOFT.thinking, max_response_tokens=8, max_thinking_tokens=3)
    r = generate(ScriptedLM(2, [7] * 5 + [9]), ToyTokenizer(), [[1, 1]], cfg, seed=0)[0]
    assert r.tokens.tolist()[:4] == [7, 7, 7, THINK_END]
    assert r.is_soft.tolist()[:4] == [True, True, True, False] and r.forced.tolist()[:4] == [False] * 3 + [True]
    assert r.thinking_end == "cap" and r.finish_reason == "length" and len(r.tokens) == 8
    assert not r.is_soft[4:].any()


def test_cold_stop_fires_after_consecutive_low_entropy_steps():
    cfg = RolloutConfig(mode="soft", thinking=SOFT.thinking, max_response_tokens=10, max_thinking_tokens=10,
                        cold_stop_entropy=0.01, cold_stop_steps=3)
    r = generate(ScriptedLM(2, [7]), ToyTokenizer(), [[1, 1]], cfg, seed=0)[0]
    # entropy is ~0 from step 0: steps 0 and 1 are soft, the run reaches 3 at step 2 which emits </think>
    assert r.tokens.tolist()[:3] == [7, 7, THINK_END] and r.thinking_end == "cold_stop" and bool(r.forced[2])
    off = generate(ScriptedLM(2, [7]), ToyTokenizer(), [[1, 1]], SOFT, seed=0)[0]
    assert off.thinking_end == "cap"


def test_discrete_mode_never_takes_soft_steps():
    cfg = RolloutConfig(mode="discrete", max_response_tokens=10, max_thinking_tokens=10, answer_top_k=0)
    rollouts = generate(random_model(), ToyTokenizer(), PROMPTS, cfg, seed=3)
    for r in rollouts:
        assert not r.is_soft.any() and torch.equal(r.ids[:, 0], r.tokens) and r.gp.abs().sum() == 0


def test_kv_cached_logprobs_equal_a_full_recompute_of_the_rebuilt_sequence():
    model = random_model()
    rollouts = generate(model, ToyTokenizer(), PROMPTS, SOFT, seed=11)
    k = SOFT.thinking.max_topk
    for r in rollouts:
        prompt_ids, prompt_w = one_hot_slots(torch.tensor(r.prompt_ids), k)
        weights = torch.where(r.is_soft[:, None], torch.softmax(r.gp / SOFT.thinking.gumbel_tau, -1),
                              one_hot_slots(r.tokens, k)[1])
        assert torch.equal(weights, r.weights)  # the stored fed weights are the Gumbel-softmax mixture
        ids = torch.cat([prompt_ids, r.ids])[None]
        logits = model(ids, torch.cat([prompt_w, weights])[None]).logits[0, len(r.prompt_ids) - 1:-1]
        recomputed = policy_logprob(logits / r.temperature[:, None], r.ids, r.gp, r.tokens, r.is_soft, 1.0, "mean",
                                    r.kept, r.edge)
        assert torch.allclose(recomputed, r.logprob, atol=1e-4)


def test_greedy_answers_decode_the_argmax_with_zero_logprob_and_entropy():
    # soft thinking closed by the cap, then a greedy answer phase: every answer token is the argmax of its logits
    cfg = RolloutConfig(mode="soft", thinking=SOFT.thinking, answer_temperature=0.0, max_response_tokens=7,
                        max_thinking_tokens=2)
    script = [7, 7, 7, 9, 10, EOS]
    r = generate(ScriptedLM(2, script), ToyTokenizer(), [[1, 1]], cfg, seed=0)[0]
    assert r.tokens.tolist() == [7, 7, THINK_END, 9, 10, EOS] and r.finish_reason == "stop"
    answer = slice(r.n_thinking, None)
    assert r.temperature[answer].tolist() == [0.0] * 3
    assert r.logprob[answer].tolist() == [0.0] * 3 and r.entropy[answer].tolist() == [0.0] * 3
    assert torch.isfinite(r.logprob).all() and (r.logprob[:2] != 0).all()  # the soft steps keep their log-probs
    # discrete mode, random model: greedy rows ignore the seed and equal a step-by-step argmax
    greedy = RolloutConfig(mode="discrete", answer_temperature=0.0, max_response_tokens=6, max_thinking_tokens=6)
    model = random_model()
    a = generate(model, ToyTokenizer(), PROMPTS, greedy, seed=1)
    b = generate(model, ToyTokenizer(), PROMPTS, greedy, seed=2)
    for x, y, prompt in zip(a, b, PROMPTS):
        assert torch.equal(x.tokens, y.tokens) and torch.isfinite(x.logprob).all()
        ids = torch.tensor(prompt + x.tokens.tolist()[:-1])[None]
        logits = model(*one_hot_slots(ids, SOFT.thinking.max_topk)).logits[0, len(prompt) - 1:]
        assert x.tokens.tolist() == logits.argmax(-1).tolist()
