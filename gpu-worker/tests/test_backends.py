"""The trainer's explicit compute choices (softgrpo.train docstring): backend "torch" | "triton" for the policy
log-probs, rollout_engine "plain" | "static" for the rollouts. On a tiny random model, fp32, CPU:

- the torch backend gives exactly the log-probs the materialised-logits loss registry gave before the choice existed;
- the triton backend (kernel 2 under TRITON_INTERPRET=1) gives the same log-probs, gradients and training step;
- the static engine rolls out the same tokens as the plain one (noise off) inside a training run;
- asking for Triton where it cannot run fails before anything loads, with a message naming the option.

Run: cd gpu-worker && TRITON_INTERPRET=1 .venv/bin/python -m pytest tests/test_backends.py
"""
import dataclasses
import json

import pytest
import torch

from softgrpo import kernels
from softgrpo.cli import main as cli_main
from softgrpo.config import check_engine_options, resolve_hyperparameters, rollout_config
from softgrpo.kernels import triton_available
from softgrpo.loss import LOSSES, gathered_logits
from softgrpo.model import SoftTokenLM
from softgrpo.rollout import RolloutConfig
from softgrpo.sampler import SoftStepConfig
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.rollout_engine import make_rollout_engine
from softgrpo.train import RunConfig, build_batch, sequence_logprobs, train
from test_train import EXAMPLES, digit_grader, make_model_folder

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores
needs_triton = pytest.mark.skipif(not triton_available("cpu"), reason="needs TRITON_INTERPRET=1 (or CUDA)")
# different thinking and answer temperatures: the log-probs are scored per temperature group
CFG = RolloutConfig(thinking=SoftStepConfig(temperature=0.9, top_k=6, top_p=0.95, max_topk=3),
                    answer_temperature=0.7, answer_top_k=5, answer_top_p=0.9, max_response_tokens=8,
                    max_thinking_tokens=5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("backends") / "base", tie=False)
    model, tokenizer = SoftTokenLM.from_pretrained(folder), ChatTokenizer.from_pretrained(folder)
    prompts = [tokenizer.encode_chat([{"role": "user", "content": e["prompt"]}]) for e in EXAMPLES[:3]]
    rollout = make_rollout_engine("plain", "torch", model, tokenizer, 0)
    batches = {mode: build_batch(rollout(prompts, dataclasses.replace(CFG, mode=mode, embedding_noise=0.3), 7,
                                         [0, 1, 2]), torch.tensor([1.0, -0.5, -0.5]), "cpu")
               for mode in ("soft", "gaussian")}
    return folder, model, tokenizer, prompts, batches


def batch_for(batches, loss):
    """The rollouts a registered loss scores (soft_gaussian: Gaussian-noise rollouts; the others: soft ones)."""
    return batches["gaussian" if LOSSES[loss].rollout == "gaussian" else "soft"]


def materialised_registry_logprobs(model, batch, loss):
    """The loss path before the backend choice: float32 [M, V] logits / tau, gathered, then the registered loss."""
    entry = LOSSES[loss]
    out = model(batch.ids, batch.weights, attention_mask=batch.attention_mask, return_hidden=True,
                input_offset=batch.input_offset)
    hidden = out.hidden[batch.rows, batch.positions]
    logits = (hidden.float() @ model.lm_head_weight.float().T) / batch.temperature[:, None]
    soft_rows = batch.is_soft if entry.scores_soft_steps else torch.zeros_like(batch.is_soft)
    zg, lse = gathered_logits(logits, batch.step_ids, batch.tokens, soft_rows)
    embedding = model.model.embed_tokens.weight if entry.needs_embedding else None
    return entry.step_logprob(zg, lse, batch.step_data(soft_rows), embedding)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_torch_backend_equals_the_materialised_loss_registry(setup, loss):
    _, model, _, _, batches = setup
    batch = batch_for(batches, loss)
    assert batch.is_soft.any() and (~batch.is_soft).any() and len(batch.temperature.unique()) == 2
    with torch.no_grad():
        ours = sequence_logprobs(model, batch, loss, backend="torch")[0]
        before = materialised_registry_logprobs(model, batch, loss)
    # same formulas, same float32 logits; the temperature groups run their own matmuls over subsets of rows,
    # which BLAS may block differently, hence a tolerance at the float32 rounding level instead of bit equality
    torch.testing.assert_close(ours, before, rtol=1e-6, atol=1e-6)
    # one temperature (the default: answer settings follow thinking): one matmul, bit for bit what it was
    one = dataclasses.replace(batch, temperature=torch.full_like(batch.temperature, 0.9))
    with torch.no_grad():
        assert torch.equal(sequence_logprobs(model, one, loss, backend="torch")[0],
                           materialised_registry_logprobs(model, one, loss))


def moved(model, seed=0, scale=0.02):
    """A copy of model with every parameter nudged, as after an update. Why: at theta = theta_old a clamped Gumbel
    noise g = -1.5 or 3 gives h = clamp(gp - log q) exactly on the clamp's edge, where the clamp's gradient (pass or
    block) is decided by the last bit of float rounding; two correct implementations may then disagree there."""
    import copy
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return other


def grads(model, batch, loss, backend):
    model.zero_grad(set_to_none=True)
    logp = sequence_logprobs(model, batch, loss, backend=backend)[0]
    (logp * batch.advantages).sum().backward()
    return logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@needs_triton
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_triton_backend_gives_the_torch_logprobs_and_gradients(setup, loss):
    _, model, _, _, batches = setup
    batch = batch_for(batches, loss)
    model = moved(model)
    logp_torch, grad_torch = grads(model, batch, loss, "torch")
    logp_triton, grad_triton = grads(model, batch, loss, "triton")
    torch.testing.assert_close(logp_triton, logp_torch, rtol=1e-5, atol=1e-5)
    assert grad_torch.keys() == grad_triton.keys()
    for name in grad_torch:
        # soft_gaussian divides by sigma^2: compare at the gradient's own scale
        scale = max(1.0, float(grad_torch[name].abs().max()))
        torch.testing.assert_close(grad_triton[name], grad_torch[name], rtol=1e-4, atol=1e-5 * scale, msg=name)
    assert grad_torch["lm_head.weight"].abs().max() > 0


def small_hp(**overrides):
    raw = {"batch_size": 2, "group_size": 3, "mini_batch_size": 1, "n_steps": 1, "learning_rate": 1e-2,
           "max_response_tokens": 8, "max_thinking_tokens": 5, "top_k": 6, "top_p": 0.95, "answer_top_k": 5,
           "answer_top_p": 0.9, "answer_temperature": 0.8, "max_topk": 3, "kl_beta": 0.01, **overrides}
    return resolve_hyperparameters(raw, "soft_grpo", len(EXAMPLES))


def run(folder, out, hp, **options):
    events = list(train(folder, EXAMPLES, hp, "soft_grpo", digit_grader, out, run=RunConfig(**options)))
    return events[0], next(e for e in events if e["type"] == "metrics")


@needs_triton
def test_one_training_step_with_triton_backend_matches_torch(setup, tmp_path):
    folder = setup[0]
    # noise_scale 0.5: h = 0.5 * clamp(g) at the first update, off the clamp's edges (see moved())
    hp = small_hp(noise_scale=0.5)
    start_torch, torch_step = run(folder, tmp_path / "torch", hp, backend="torch")
    start_triton, triton_step = run(folder, tmp_path / "triton", hp, backend="triton")
    assert (start_torch["backend"], start_triton["backend"]) == ("torch", "triton")
    assert start_triton["rollout_engine"] == "plain" and start_triton["cuda_graphs"] is False
    assert torch_step["reward_std"] > 0 and torch_step["soft_step_fraction"] > 0
    assert triton_step["ratio_first_update_max_deviation"] == 0.0  # old and new log-probs: the same kernel
    for name in ("reward_mean", "soft_step_fraction", "thinking_length"):  # same plain rollouts
        assert triton_step[name] == torch_step[name], name
    for name in ("pg_loss", "kl", "grad_norm", "ratio_mean", "ratio_max", "rollout_logprob_gap"):
        assert triton_step[name] == pytest.approx(torch_step[name], rel=1e-4, abs=1e-6), name
    before = SoftTokenLM.from_pretrained(folder).state_dict()
    after = [SoftTokenLM.from_pretrained(tmp_path / side / "checkpoints/step-000001/model").state_dict()
             for side in ("torch", "triton")]
    # Adam's first step is about lr * sign(g): an element whose gradient is ~1e-8 (rounding level) can move by a
    # visible fraction of lr on one backend only, so compare each tensor's whole update, not single elements
    for name, value in after[0].items():
        update_torch, update_triton = value - before[name], after[1][name] - before[name]
        assert float((update_triton - update_torch).norm()) <= 1e-3 * float(update_torch.norm()) + 1e-7, name


def test_static_engine_rolls_out_the_plain_tokens_with_noise_off(setup):
    _, model, tokenizer, prompts, _ = setup
    cfg = RolloutConfig(thinking=SoftStepConfig(top_k=6, top_p=0.95, max_topk=3, noise_scale=0.0),
                        answer_top_k=5, answer_top_p=0.9, max_response_tokens=8, max_thinking_tokens=5)
    plain = make_rollout_engine("plain", "torch", model, tokenizer, 0)(prompts, cfg, 3, [0, 1, 2])
    # max_prompt_len above the longest prompt: the static engine left-pads to it, as in training
    static = make_rollout_engine("static", "torch", model, tokenizer, max(map(len, prompts)) + 3)
    ours = static(prompts, cfg, 3, [0, 1, 2])
    again = static(prompts, cfg, 3, [0, 1, 2])  # the kept engine, reused
    assert any(r.is_soft.any() for r in plain)
    for a, b, c in zip(ours, plain, again):
        assert a.tokens.tolist() == b.tokens.tolist() == c.tokens.tolist()
        assert torch.equal(a.ids, b.ids) and torch.equal(a.is_soft, b.is_soft)
        torch.testing.assert_close(a.logprob, b.logprob, atol=2e-4, rtol=1e-4)


def test_training_through_the_static_engine_matches_plain_with_noise_off(setup, tmp_path):
    folder = setup[0]
    hp = small_hp(noise_scale=0.0)
    _, plain = run(folder, tmp_path / "plain", hp)
    start, static = run(folder, tmp_path / "static", hp, rollout_engine="static")
    assert start["rollout_engine"] == "static" and start["backend"] == "torch" and start["cuda_graphs"] is False
    for name in ("reward_mean", "soft_step_fraction", "thinking_length", "answer_length"):
        assert static[name] == plain[name], name
    assert static["ratio_first_update_max_deviation"] == 0.0
    assert static["pg_loss"] == pytest.approx(plain["pg_loss"], rel=1e-4, abs=1e-6)


@needs_triton
def test_static_engine_with_triton_backend_needs_a_bounded_top_k(setup, tmp_path):
    with pytest.raises(ValueError, match="hyperparameters.top_k must be in 1..64"):
        next(train(setup[0], EXAMPLES, small_hp(top_k=0), "soft_grpo", digit_grader, tmp_path / "out",
                   run=RunConfig(backend="triton", rollout_engine="static")))
    assert not (tmp_path / "out").exists()
    # discrete rollouts sample only the answer phase: the thinking top_k does not matter there
    grpo = resolve_hyperparameters({"top_k": 0, "answer_top_k": 5}, "grpo", 10)
    assert check_engine_options("triton", "static", "cpu", rollout_config(grpo, "grpo")) is False


@pytest.fixture
def no_triton(monkeypatch):
    """A machine where Triton cannot run: no CUDA and not interpreting."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_triton_where_it_cannot_run_fails_before_training(setup, tmp_path, no_triton, capsys):
    folder = setup[0]
    with pytest.raises(ValueError, match="backend='triton' was requested but Triton cannot run on device cpu"):
        next(train(folder, EXAMPLES, small_hp(), "soft_grpo", digit_grader, tmp_path / "out",
                   run=RunConfig(backend="triton")))
    assert not (tmp_path / "out").exists()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        kernels.policy_logprob_fn("triton")
    data, config = tmp_path / "train.jsonl", tmp_path / "cfg.json"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    config.write_text(json.dumps({"hyperparameters": {"batch_size": 2, "group_size": 2, "n_steps": 1}}))
    code = cli_main(["train", "--model", str(folder), "--train", str(data), "--config", str(config), "--out",
                     str(tmp_path / "cli"), "--device", "cpu", "--backend", "triton"])
    assert code == 2 and "Triton cannot run on device cpu" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


@pytest.mark.parametrize("backend, engine, named", [("cuda", "plain", "backend"), ("torch", "graph", "rollout_engine")])
def test_unknown_backend_or_engine_names_the_option(backend, engine, named):
    with pytest.raises(ValueError, match=f"^{named} must be one of"):
        check_engine_options(backend, engine, "cpu")
