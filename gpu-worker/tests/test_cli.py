"""The command line fails on bad input, naming the problem, before any training starts; a small run succeeds."""
import json

import pytest
import torch

from softgrpo.cli import main
from test_train import EXAMPLES, make_model_folder

torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing the shared 2 cores


@pytest.fixture
def setup(tmp_path):
    folder = make_model_folder(tmp_path / "base")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"method": "soft_grpo", "seed": 3, "grader": {"type": "math"},
                                  "hyperparameters": {"batch_size": 2, "group_size": 2, "n_steps": 1,
                                                      "max_response_tokens": 6, "learning_rate": 1e-3}}))
    return tmp_path, folder, data, config


def cli(folder, data, config, out, *extra):
    return main(["train", "--model", str(folder), "--train", str(data), "--config", str(config), "--out", str(out),
                 "--threads", "1", *extra])


def test_small_run_prints_json_events_and_writes_a_checkpoint(setup, capsys):
    tmp, folder, data, config = setup
    assert cli(folder, data, config, tmp / "out") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in events] == ["start", "metrics", "checkpoint", "done"]
    assert events[0]["seed"] == 3 and events[0]["hyperparameters"]["group_size"] == 2
    assert (tmp / "out/checkpoints/step-000001/model/manifest.json").is_file()


def test_malformed_dataset_line_fails_before_training(setup, capsys):
    tmp, folder, data, config = setup
    data.write_text(data.read_text() + '{"prompt": "1+1"}\n{oops\n')
    assert cli(folder, data, config, tmp / "out") == 2
    err = capsys.readouterr().err
    assert 'line 7: missing "answer"' in err and "line 8: invalid JSON" in err
    assert not (tmp / "out").exists()


def test_unknown_model_folder_fails_before_training(setup, capsys):
    tmp, folder, data, config = setup
    assert cli(tmp / "no-such-model", data, config, tmp / "out") == 2
    assert "no-such-model" in capsys.readouterr().err and not (tmp / "out").exists()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert cli(folder, data, config, tmp / "out") == 2
    assert "model_type" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad, named",
    [({"hyperparameters": {"learning_rate": 0}}, "hyperparameters.learning_rate"),
     ({"hyperparameters": {"grop_size": 4}}, "hyperparameters.grop_size"),
     ({"grader": {"type": "regex"}}, "grader.pattern"), ({"method": "ppo"}, "method"),
     ({"epochs": 3}, "config.epochs"), ({"seed": -1}, "config.seed")],
)
def test_invalid_config_fails_naming_the_field(setup, capsys, bad, named):
    tmp, folder, data, config = setup
    config.write_text(json.dumps(bad))
    assert cli(folder, data, config, tmp / "out") == 2
    assert named in capsys.readouterr().err and not (tmp / "out").exists()


def test_backend_and_rollout_engine_flags_reach_the_run_and_its_start_event(setup, capsys):
    tmp, folder, data, config = setup
    assert cli(folder, data, config, tmp / "default", "--device", "cpu") == 0
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (start["backend"], start["rollout_engine"], start["cuda_graphs"]) == ("torch", "plain", False)
    assert cli(folder, data, config, tmp / "static", "--device", "cpu", "--rollout-engine", "static") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (events[0]["backend"], events[0]["rollout_engine"]) == ("torch", "static")
    assert [e["type"] for e in events] == ["start", "metrics", "checkpoint", "done"]
    with pytest.raises(SystemExit):  # argparse rejects names outside the choices
        cli(folder, data, config, tmp / "bad", "--backend", "cuda")
