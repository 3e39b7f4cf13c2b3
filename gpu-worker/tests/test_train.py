"""The training loop on a tiny random model: exact first ratio, gradient paths, every parameter moves, LoRA, GRPO."""
import json
import math
import re
from pathlib import Path

import pytest
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from softgrpo.config import resolve_hyperparameters
from softgrpo.model import SoftTokenLM
from softgrpo.rollout import RolloutConfig, generate
from softgrpo.sampler import SoftStepConfig
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.train import build_batch, inputs_detached, prompt_indices, sequence_logprobs, train
from softgrpo.worker.events import describe_metrics

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores
CHAT_TEMPLATE = ("{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n' }}{%- endfor %}"
                 "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}")
EXAMPLES = [{"prompt": f"{a}+{b}", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (0, 3), (4, 4)]]


def make_model_folder(folder: Path, tie: bool = True, seed: int = 0) -> Path:
    """A random Qwen2 model folder with a small byte-level BPE tokenizer and the project's chat template."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([r"user assistant the answer is \boxed{12} 3+4=7"] * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": CHAT_TEMPLATE, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None}))
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": tok.get_vocab_size(),
              "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
              "rope_theta": 10000.0, "tie_word_embeddings": tie, "initializer_range": 0.2}
    SoftTokenLM.from_config(config, seed=seed).save_pretrained(folder)
    (folder / "manifest.json").write_text(json.dumps({"format": "softgrpo-model/1", "base": "toy", "step": 0,
                                                      "context_length": 512}))
    return folder


def digit_grader(answer_text: str, example: dict) -> float:
    """Toy reward with variance under a random model: an odd number of characters in the answer text."""
    return float(len(answer_text) % 2)


def small_hp(**overrides):
    raw = {"batch_size": 2, "group_size": 4, "mini_batch_size": 1, "n_steps": 2, "learning_rate": 1e-2,
           "max_response_tokens": 10, "max_thinking_tokens": 4, "top_k": 0, "top_p": 1.0, "answer_top_k": 0,
           "answer_top_p": 1.0, "kl_beta": 0.01, **overrides}
    return resolve_hyperparameters(raw, "soft_grpo", len(EXAMPLES))


def run(folder, out, hp, method="soft_grpo", **kwargs):
    return list(train(folder, EXAMPLES, hp, method, digit_grader, out, **kwargs))


def test_first_ratio_is_exactly_one_and_every_parameter_changes(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    events = run(folder, tmp_path / "out", small_hp())
    metrics = [e for e in events if e["type"] == "metrics"]
    assert events[0]["type"] == "start" and events[-1]["type"] == "done" and len(metrics) == 2
    assert all(m["ratio_first_update_max_deviation"] == 0.0 for m in metrics)
    assert any(m["reward_std"] > 0 for m in metrics) and all(m["soft_step_fraction"] > 0 for m in metrics)
    assert metrics[0]["rollout_logprob_gap"] < 1e-3
    # prompt + sampled tokens of every rollout: more than one token per rollout (the API sums them into trained_tokens)
    rollouts = small_hp().batch_size * small_hp().group_size
    assert all(isinstance(m["step_tokens"], int) and m["step_tokens"] > rollouts for m in metrics)
    before = SoftTokenLM.from_pretrained(folder).state_dict()
    after = SoftTokenLM.from_pretrained(tmp_path / "out/checkpoints/step-000002/model").state_dict()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []


def test_one_input_gradient_rule_for_soft_mixtures_and_discrete_tokens(tmp_path):
    folder = make_model_folder(tmp_path / "base", tie=False)
    model, tokenizer = SoftTokenLM.from_pretrained(folder), ChatTokenizer.from_pretrained(folder)
    cfg = RolloutConfig(thinking=SoftStepConfig(top_k=0, top_p=1.0, max_topk=3), max_response_tokens=6,
                        max_thinking_tokens=6)
    prompts = [tokenizer.encode_chat([{"role": "user", "content": "3+4"}])] * 2
    rollouts = generate(model, tokenizer, prompts, cfg, seed=1)
    batch = build_batch(rollouts, torch.tensor([1.0, -1.0]), device="cpu")
    prompt_inputs = set(batch.ids[..., 0][~batch.response_input & batch.attention_mask.bool()].tolist())
    response_only = sorted(set(batch.ids[batch.response_input].flatten().tolist()) - prompt_inputs)
    assert response_only, "the rollout should feed some ids only as generated inputs"

    def embedding_grad(detach: bool):
        model.zero_grad()
        logp = sequence_logprobs(model, batch, "soft_grpo", detach_response_inputs=detach)[0]
        (logp * batch.advantages).sum().backward()
        return model.model.embed_tokens.weight.grad[response_only].abs().max(), model.lm_head.weight.grad.abs().max()

    detached_grad, head_grad = embedding_grad(detach=True)
    assert float(detached_grad) == 0.0 and float(head_grad) > 0  # q (through lm_head) still gets gradient
    assert float(embedding_grad(detach=False)[0]) > 0  # the default rule: generated inputs pass gradient into E
    with inputs_detached(model, batch.response_input):
        pass
    assert not model.model.embed_tokens._forward_hooks  # the hook is removed after the block


def test_lora_trains_only_adapters_and_checkpoint_is_merged(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    events = run(folder, tmp_path / "out", small_hp(lora_rank=4, n_steps=1))
    assert events[0]["trainable_parameters"] < SoftTokenLM.from_pretrained(folder).num_parameters() / 2
    merged = SoftTokenLM.from_pretrained(tmp_path / "out/checkpoints/step-000001/model")
    base = SoftTokenLM.from_pretrained(folder)
    changed = [n for n, p in merged.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed and all(any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj", "_proj")) for n in changed)
    assert not any("embed" in n or "norm" in n for n in changed)


def test_grpo_method_uses_discrete_rollouts(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    hp = resolve_hyperparameters({"batch_size": 2, "group_size": 2, "n_steps": 1, "max_response_tokens": 6,
                                  "learning_rate": 1e-3}, "grpo", len(EXAMPLES))
    events = run(folder, tmp_path / "out", hp, method="grpo")
    metrics = next(e for e in events if e["type"] == "metrics")
    assert metrics["soft_step_fraction"] == 0.0 and metrics["ratio_first_update_max_deviation"] == 0.0


def test_validation_is_evaluated_before_training_and_at_intervals(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    events = run(folder, tmp_path / "out", small_hp(n_steps=2, eval_interval=1, eval_samples=2),
                 validation_examples=EXAMPLES[:2])
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 1, 2]
    assert all(0 <= e["pass_at_1"] <= e["pass_at_2"] <= 1 for e in evals)


def test_sending_stop_checkpoints_and_ends_the_run(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    events = train(folder, EXAMPLES, small_hp(n_steps=5, checkpoint_interval=5), "soft_grpo", digit_grader,
                   tmp_path / "out")
    seen = [next(events)]
    while seen[-1]["type"] != "metrics":
        seen.append(next(events))
    seen.append(events.send("stop"))
    seen += list(events)
    assert [e["type"] for e in seen[-2:]] == ["checkpoint", "stopped"] and seen[-1]["step"] == 1
    assert (tmp_path / "out/checkpoints/step-000001/state/state.json").is_file()


def test_kl_to_the_reference_is_reported_only_when_the_loss_has_a_kl_term(tmp_path):
    """kl_beta > 0: every step's metrics carry `kl` (k3 to the frozen initial policy, measured: the second
    mini-batch runs after an optimizer step, so it is above 0) and the event line prints it. kl_beta 0: no
    reference policy, no `kl` key, and the line says it was not computed instead of printing 0 (it used to)."""
    folder = make_model_folder(tmp_path / "base")
    with_kl = [e for e in run(folder, tmp_path / "kl", small_hp(n_steps=2)) if e["type"] == "metrics"]
    assert all(math.isfinite(m["kl"]) and m["kl"] > 0 for m in with_kl)
    line = describe_metrics(with_kl[0], 2, 0.01)
    assert f"kl {with_kl[0]['kl']:.4f}," in line and "not computed" not in line
    without = [e for e in run(folder, tmp_path / "no-kl", small_hp(n_steps=1, kl_beta=0.0)) if e["type"] == "metrics"]
    assert "kl" not in without[0]
    line = describe_metrics(without[0], 1, 0.0)
    assert "kl not computed (kl_beta 0)" in line and not re.search(r"kl \d", line)


def test_prompt_stream_visits_every_prompt_once_per_epoch_and_depends_only_on_position():
    stream = prompt_indices(7, seed=4, start=0, count=21)
    assert all(sorted(stream[e * 7:(e + 1) * 7]) == list(range(7)) for e in range(3))
    assert stream[:7] != stream[7:14]  # a new permutation per epoch
    assert prompt_indices(7, seed=4, start=9, count=5) == stream[9:14]


TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"


@pytest.mark.skipif(not (TINY / "model.safetensors").is_file(), reason="the bundled tiny model is not built yet")
def test_one_soft_grpo_step_on_the_bundled_tiny_model(tmp_path):
    from softgrpo.data import load_jsonl
    from softgrpo.rewards import make_grader

    examples = load_jsonl(TINY / "data" / "train.jsonl")[:4]
    hp = resolve_hyperparameters({"batch_size": 2, "group_size": 4, "n_steps": 1, "max_response_tokens": 48,
                                  "learning_rate": 1e-4}, "soft_grpo", len(examples))
    events = list(train(TINY, examples, hp, "soft_grpo", make_grader({"type": "math"}), tmp_path / "out"))
    metrics = next(e for e in events if e["type"] == "metrics")
    assert metrics["ratio_first_update_max_deviation"] == 0.0 and metrics["soft_step_fraction"] > 0.3
    assert metrics["rollout_logprob_gap"] < 1e-3 and metrics["thinking_length"] > 3
