"""Training options for models at size (issue 17): gradient checkpointing recomputes each decoder layer in the
backward pass and changes no number; bf16 runs the log-prob forwards under autocast with float32 weights."""

import torch

from softgrpo.model import SoftTokenLM
from softgrpo.train import RunConfig
from test_train import make_model_folder, run, small_hp

torch.set_num_threads(2)


def test_gradient_checkpointing_gives_the_same_gradients():
    config = {"model_type": "llama", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 48,
              "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}
    grads = []
    for recompute in (False, True):
        model = SoftTokenLM.from_config(config, seed=0).train()
        model.gradient_checkpointing = recompute
        ids = torch.randint(0, 50, (2, 7, 3), generator=torch.Generator().manual_seed(1))
        weights = torch.softmax(torch.randn(2, 7, 3, generator=torch.Generator().manual_seed(2)), -1)
        model(ids, weights).logits.logsumexp(-1).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_a_run_with_gradient_checkpointing_trains_the_same_weights(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    hp = small_hp(n_steps=1)
    run(folder, tmp_path / "plain", hp, seed=3)
    run(folder, tmp_path / "recompute", hp, seed=3, run=RunConfig(gradient_checkpointing=True))
    a = SoftTokenLM.from_pretrained(tmp_path / "plain/checkpoints/step-000001/model").state_dict()
    b = SoftTokenLM.from_pretrained(tmp_path / "recompute/checkpoints/step-000001/model").state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)


def test_bf16_autocast_keeps_float32_weights_and_a_first_ratio_of_one(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    events = run(folder, tmp_path / "out", small_hp(n_steps=1), seed=3, run=RunConfig(bf16=True))
    metrics = [e for e in events if e["type"] == "metrics"]
    # old and new log-probs are both computed under autocast, so the first update's ratio is exactly 1
    assert metrics[0]["ratio_first_update_max_deviation"] == 0.0
    before = SoftTokenLM.from_pretrained(folder).state_dict()
    after = SoftTokenLM.from_pretrained(tmp_path / "out/checkpoints/step-000001/model").state_dict()
    assert all(t.dtype == torch.float32 for t in after.values())
    assert [n for n in before if torch.equal(before[n], after[n])] == []
