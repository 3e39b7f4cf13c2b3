"""Hyperparameter validation and "auto" resolution."""
import pytest

from softgrpo.config import FIELD_NAMES, resolve_hyperparameters, rollout_config


def test_all_auto_gives_the_reference_defaults_and_derived_values():
    hp = resolve_hyperparameters({}, "soft_grpo", train_size=100)
    assert (hp.batch_size, hp.n_steps, hp.mini_batch_size, hp.group_size) == (64, 2, 32, 8)
    assert (hp.learning_rate, hp.clip_eps, hp.dual_clip, hp.kl_beta, hp.loss) == (1e-6, 0.2, 3.0, 0.001, "soft_grpo")
    assert (hp.top_k, hp.top_p, hp.max_topk, hp.gumbel_tau, hp.noise_scale) == (5, 0.95, 5, 0.1, 1.0)
    assert (hp.answer_temperature, hp.answer_top_k, hp.answer_top_p) == (1.0, 5, 0.95)
    assert hp.max_thinking_tokens == hp.max_response_tokens == 8192 and hp.cold_stop_entropy is None
    assert (hp.eval_interval, hp.checkpoint_interval, hp.lora_rank, hp.lora_alpha) == (1, 1, 0, 0.0)
    assert resolve_hyperparameters({}, "grpo", 10).loss == "grpo"


def test_explicit_values_drive_the_dependent_autos():
    hp = resolve_hyperparameters({"batch_size": 4, "temperature": 0.7, "lora_rank": 8, "max_response_tokens": 64},
                                 "soft_grpo", train_size=30)
    assert (hp.n_steps, hp.mini_batch_size, hp.answer_temperature, hp.lora_alpha) == (8, 2, 0.7, 16.0)
    assert hp.max_thinking_tokens == 64 and hp.eval_interval == 1 and hp.checkpoint_interval == 1


def test_manifest_recommendations_come_before_reference_defaults():
    manifest = {"recommended_hyperparameters": {"learning_rate": 1e-4, "group_size": 4, "max_response_tokens": 96}}
    hp = resolve_hyperparameters({"group_size": 6}, "soft_grpo", 10, manifest=manifest)
    assert (hp.learning_rate, hp.group_size, hp.max_response_tokens) == (1e-4, 6, 96)


def test_auto_response_length_is_half_the_context_and_explicit_overflow_fails():
    assert resolve_hyperparameters({}, "soft_grpo", 10, context_length=512).max_response_tokens == 256
    with pytest.raises(ValueError, match="max_response_tokens"):
        resolve_hyperparameters({"max_response_tokens": 1000}, "soft_grpo", 10, context_length=512)


@pytest.mark.parametrize(
    "raw, field",
    [({"learning_rate": -1}, "hyperparameters.learning_rate"), ({"group_size": 1}, "hyperparameters.group_size"),
     ({"batch_size": 2.5}, "hyperparameters.batch_size"), ({"top_p": 0}, "hyperparameters.top_p"),
     ({"loss": "ppo"}, "hyperparameters.loss"), ({"lr": 1e-5}, "hyperparameters.lr"),
     ({"ppo_epochs": True}, "hyperparameters.ppo_epochs"), ({"cold_stop_entropy": "low"}, "cold_stop_entropy"),
     ({"batch_size": 4, "mini_batch_size": 8}, "mini_batch_size")],
)
def test_invalid_values_name_the_field(raw, field):
    with pytest.raises(ValueError, match=field):
        resolve_hyperparameters(raw, "soft_grpo", train_size=10)


def test_invalid_manifest_recommendation_names_its_source():
    with pytest.raises(ValueError, match="manifest.recommended_hyperparameters.top_k"):
        resolve_hyperparameters({}, "soft_grpo", 10, manifest={"recommended_hyperparameters": {"top_k": -2}})


def test_rollout_config_follows_the_method():
    hp = resolve_hyperparameters({"answer_temperature": 0.5, "cold_stop_entropy": 0.1}, "soft_grpo", 10)
    soft = rollout_config(hp, "soft_grpo")
    assert soft.mode == "soft" and soft.thinking.max_topk == 5 and soft.answer_temperature == 0.5
    assert soft.cold_stop_entropy == 0.1
    assert rollout_config(hp, "grpo").mode == "discrete"
    assert len(FIELD_NAMES) == 35
    gaussian = resolve_hyperparameters({"loss": "soft_gaussian"}, "soft_grpo", 10)
    assert rollout_config(gaussian, "soft_grpo").mode == "gaussian"
    with pytest.raises(ValueError, match="hyperparameters.loss"):
        resolve_hyperparameters({"loss": "soft_grpo_rb"}, "grpo", 10)


def test_manifest_recommended_loss_applies_to_soft_jobs_and_grpo_jobs_keep_theirs():
    manifest = {"recommended_hyperparameters": {"loss": "soft_grpo_rb"}}
    assert resolve_hyperparameters({}, "soft_grpo", 10, manifest).loss == "soft_grpo_rb"
    assert resolve_hyperparameters({}, "grpo", 10, manifest).loss == "grpo"
