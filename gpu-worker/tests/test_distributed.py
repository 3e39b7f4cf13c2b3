"""Training under torchrun with gloo and FSDP2, 2 ranks, against the single process on the tiny random model:

- the same rollouts for the same seed (every token of every rollout, from the real training loop's records);
- loss, rewards and gradient norm of the step, and every parameter after it, equal within TOLERANCE;
- a checkpoint saved by 2 ranks resumes in 1 process, and one saved by 1 process resumes on 2 ranks, each reaching
  the parameters of the straight single-process run;
- a cancel (the heartbeat's check raising while the relay waits) ends torchrun and both ranks mid-step; a pause
  (the control file) stops every rank at the next step end with a checkpoint.

Real processes: `torchrun --standalone --nproc_per_node=2` (softgrpo.worker.launcher's command line) running
softgrpo.rank_entry, through tests/rank_recorder.py where the rollouts are recorded.

    cd gpu-worker && .venv/bin/python -m pytest tests/test_distributed.py
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from softgrpo import train as train_module
from softgrpo.distributed import DevicesError, Ranks, check_devices, rank_rows
from softgrpo.rewards import make_grader
from softgrpo.train import RunConfig, train
from softgrpo.worker.lease import StopJob
from softgrpo.worker.launcher import rank_pids, torchrun_command, torchrun_training, write_run_file
from test_train import EXAMPLES, make_model_folder, small_hp

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
# odd answer lengths score 1: a reward with variance under a random model, through a real grader
GRADER = {"type": "regex", "pattern": "(?s)^(..)*.$", "scope": "answer"}
SEED = 7
# Float32 sums in another order (gradients reduce-scattered over 2 ranks, token sums split in two) move results by
# rounding only: measured 3e-8 on the loss, 6e-7 on the gradient norm (3.24), 1.2e-7 on any parameter after one and
# after two steps (learning rate 1e-3; a third step was added later to leave room for the cancel). The bounds leave room for other BLAS builds, and are 100 times below what one
# step moves a parameter.
TOLERANCE = {"loss": 1e-5, "parameters": 1e-5}


def hp():
    return small_hp(n_steps=3, checkpoint_interval=1, learning_rate=1e-3)


def in_process(folder: Path, out: Path, resume: bool = False, record: list | None = None) -> list[dict]:
    """softgrpo.train in this process (world 1); record: the step's {row: tokens}, appended per training step."""
    real = train_module.rollouts_in_chunks

    def recording(engine, prompts, cfg, seed, chunk_size, samples=None):
        rollouts = real(engine, prompts, cfg, seed, chunk_size, samples=samples)
        if record is not None:
            record.append({str(row): r.tokens.tolist() for row, r in zip(samples, rollouts)})
        return rollouts
    train_module.rollouts_in_chunks = recording
    try:
        return list(train(folder, EXAMPLES, hp(), "soft_grpo", make_grader(GRADER), out, seed=SEED, resume=resume,
                          run=RunConfig(device="cpu")))
    finally:
        train_module.rollouts_in_chunks = real


def run_file_for(folder: Path, out: Path, resume: bool = False) -> Path:
    return write_run_file(out, base_dir=folder, train_examples=EXAMPLES, validation=None, hp=hp().to_dict(),
                          method="soft_grpo", grader=GRADER, seed=SEED, resume=resume, job_id=None,
                          config=RunConfig(device="cpu"))


def weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(out / f"checkpoints/step-{step:06d}/model/model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def metrics(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "metrics"]


def keep_only_step_one(out: Path) -> None:
    for later in (out / "checkpoints").glob("step-*"):
        if later.name != "step-000001":
            shutil.rmtree(later)


def test_each_rank_takes_an_equal_contiguous_part_of_every_mini_batch():
    rows = [rank_rows(16, 8, Ranks(rank, 2)) for rank in (0, 1)]
    assert rows == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]]
    assert rank_rows(16, 8, Ranks()) == list(range(16))
    assert sorted(sum((rank_rows(24, 12, Ranks(r, 4)) for r in range(4)), [])) == list(range(24))
    # batch_size 3, mini_batch_size 2, group_size 2: the last mini-batch (rows 4-5) is split too, one row each
    assert [rank_rows(6, 4, Ranks(rank, 2)) for rank in (0, 1)] == [[0, 1, 4], [2, 3, 5]]
    with pytest.raises(ValueError, match="a mini-batch of 3 rollouts does not split over 2 ranks"):
        rank_rows(9, 6, Ranks(0, 2))


def test_devices_rules_come_from_the_contract_and_name_the_field():
    check_devices(4, small_hp(group_size=4, mini_batch_size=2, batch_size=2))
    check_devices(1, small_hp(group_size=3, mini_batch_size=1, lora_rank=8))
    with pytest.raises(DevicesError, match=r"^resources.devices: 3 devices must divide the 8 rollouts") as info:
        check_devices(3, small_hp(group_size=4, mini_batch_size=2, batch_size=2))
    assert info.value.rule == "mini_batch"
    with pytest.raises(DevicesError, match=r"the 3 rollouts of a step's last mini-batch \(batch_size 3 is not"):
        check_devices(2, small_hp(batch_size=3, mini_batch_size=2, group_size=3))
    with pytest.raises(DevicesError, match="LoRA"):
        check_devices(2, small_hp(group_size=4, mini_batch_size=1, lora_rank=8))
    with pytest.raises(DevicesError, match=r"must be an integer in \[1, 64\], got 65"):
        check_devices(65, small_hp())


def test_two_ranks_train_a_step_whose_last_mini_batch_is_partial(tmp_path):
    """batch_size 3, mini_batch_size 2, group_size 2 on 2 ranks: before the last mini-batch was split, rank 1 had no
    rollout of it and ran one optimizer step fewer, and the ranks hung in the first step. Now both ranks finish and
    step as the single process does."""
    folder = make_model_folder(tmp_path / "base")
    partial = small_hp(batch_size=3, mini_batch_size=2, group_size=2, n_steps=1, checkpoint_interval=1,
                       learning_rate=1e-3)
    one = list(train(folder, EXAMPLES, partial, "soft_grpo", make_grader(GRADER), tmp_path / "one", seed=SEED,
                     run=RunConfig(device="cpu")))
    out = tmp_path / "two"
    run_file = write_run_file(out, base_dir=folder, train_examples=EXAMPLES, validation=None, hp=partial.to_dict(),
                              method="soft_grpo", grader=GRADER, seed=SEED, resume=False, job_id=None,
                              config=RunConfig(device="cpu"))
    result = subprocess.run(torchrun_command(run_file, 2), cwd=HERE.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["world_size"] == 2 and [e["type"] for e in events][-2:] == ["done", "exit"]
    two, single = metrics(events)[0], metrics(one)[0]
    assert two["step_tokens"] == single["step_tokens"]
    for name in ("pg_loss", "reward_mean", "grad_norm"):
        assert two[name] == pytest.approx(single[name], abs=TOLERANCE["loss"], rel=1e-5), name
    # Two optimizer steps of Adam at learning rate 1e-3 move parameters by ~2e-3. A dropped or mis-scaled last
    # mini-batch moves most of them by that much; rounding moves only the few elements whose gradient is near Adam's
    # eps (the first update is lr * g / (|g| + eps)): measured 20 of 9216 embedding elements, at most 5.3e-5.
    two_weights, one_weights = weights(out, 1), weights(tmp_path / "one", 1)
    assert max_difference(two_weights, one_weights) < 2e-4
    for name in one_weights:
        close = (two_weights[name] - one_weights[name]).abs() <= TOLERANCE["parameters"]
        assert float(close.float().mean()) > 0.99, name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The straight single-process run: 3 steps, a checkpoint after each; its rollouts recorded."""
    root = tmp_path_factory.mktemp("distributed")
    folder = make_model_folder(root / "base")
    record: list = []
    events = in_process(folder, root / "one", record=record)
    return folder, root, events, record


def test_two_ranks_sample_and_step_as_one_process_a_cancel_ends_them_and_one_process_resumes(reference, tmp_path):
    folder, root, one_events, one_record = reference
    out, record_dir = tmp_path / "two", tmp_path / "record"
    record_dir.mkdir()
    run_file = run_file_for(folder, out)
    command = torchrun_command(run_file, 2)  # the worker's command line, through the recording wrapper of rank_entry
    command = command[:command.index("-m", 3)] + [str(HERE / "rank_recorder.py"), str(run_file), str(record_dir)]
    cancelled = []

    def check():  # the heartbeat's check, after a cancel or a lost lease
        if cancelled:
            raise StopJob("cancelled")
    relay = torchrun_training(run_file, 2, out, check=check, command=command)
    events = [next(relay) for _ in range(3)]
    assert [e["type"] for e in events] == ["start", "metrics", "checkpoint"] and events[0]["world_size"] == 2

    # a cancel mid-run (step 2 is under way): torchrun and both ranks end, nothing left behind
    pids = rank_pids(out)
    assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    cancelled.append(True)
    with pytest.raises(StopJob):
        while True:  # events already written are still relayed; then the wait notices the cancel
            assert next(relay)["type"] in ("metrics", "checkpoint")
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # gone, not even a zombie of ours

    # the same rollouts: the ranks' parts together are the single process's step-1 rollouts, token for token
    parts = [json.loads((record_dir / f"rank-{r}.json").read_text())[0] for r in (0, 1)]
    assert set(parts[0]).isdisjoint(parts[1]) and parts[0] and parts[1]  # each rank sampled its own rows
    assert {**parts[0], **parts[1]} == one_record[0]

    # the step's loss, rewards and gradient norm, then every parameter
    two, one = events[1], metrics(one_events)[0]
    assert one["reward_std"] > 0 and one["pg_loss"] != 0  # a step that moves the policy
    for name in ("pg_loss", "kl", "reward_mean", "reward_std", "grad_norm", "ratio_mean", "entropy"):
        assert two[name] == pytest.approx(one[name], abs=TOLERANCE["loss"], rel=1e-5), name
    assert two["ratio_first_update_max_deviation"] == 0.0 and two["step_tokens"] == one["step_tokens"]
    assert max_difference(weights(out, 1), weights(root / "one", 1)) < TOLERANCE["parameters"]
    state = json.loads((out / "checkpoints/step-000001/state/state.json").read_text())
    assert state["world_size"] == 2 and len(list((out / "checkpoints/step-000001/state/dcp").glob("*.distcp"))) == 2

    # saved by 2 ranks, resumed in 1 process: steps 2-3 reach the straight run's parameters
    keep_only_step_one(out)
    resumed = in_process(folder, out, resume=True)
    assert resumed[0]["resumed_from_step"] == 1 and [m["step"] for m in metrics(resumed)] == [2, 3]
    assert max_difference(weights(out, 3), weights(root / "one", 3)) < TOLERANCE["parameters"]


def test_a_checkpoint_of_one_process_resumes_on_two_ranks_and_a_pause_stops_them_with_a_checkpoint(reference,
                                                                                                    tmp_path):
    folder, root, one_events, _ = reference
    out = tmp_path / "one-then-two"
    shutil.copytree(root / "one", out)
    keep_only_step_one(out)  # as if the single process had stopped after step 1
    run_file = run_file_for(folder, out, resume=True)
    (out / "control").write_text("stop")  # what the worker's relay writes on a pause: obeyed at the next step end
    result = subprocess.run(torchrun_command(run_file, 2), cwd=HERE.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in rank_pids(out))  # no rank outlives torchrun
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["resumed_from_step"] == 1 and events[0]["world_size"] == 2
    assert [e["type"] for e in events][-3:] == ["checkpoint", "stopped", "exit"] and events[-2]["step"] == 2
    assert [m["step"] for m in metrics(events)] == [2]
    assert metrics(events)[0]["pg_loss"] == pytest.approx(metrics(one_events)[1]["pg_loss"], abs=TOLERANCE["loss"])
    assert max_difference(weights(out, 2), weights(root / "one", 2)) < TOLERANCE["parameters"]
    assert json.loads((out / "checkpoints/step-000002/state/state.json").read_text())["world_size"] == 2
