"""Multi-device training benchmark (issue 15): the worker's torchrun path on N devices against 1, same job, same seed.

    cd gpu-worker && python bench/bench_distributed.py                 # every visible GPU (>= 2), NCCL
    cd gpu-worker && python bench/bench_distributed.py --quick         # smaller model, a smoke run on GPUs
    cd gpu-worker && .venv/bin/python bench/bench_distributed.py --dry-run --results /tmp/r.md   # 2 CPU ranks, gloo
    cd gpu-worker && python bench/bench_gpu.py --distributed           # the same, as a part of the GPU benchmark

Both runs go through `torchrun --standalone --nproc_per_node=N -m softgrpo.rank_entry run.json` exactly as the
worker launches a job (softgrpo.worker.launcher): 1 process (plain, no FSDP) and N processes (FSDP2, NCCL on CUDA,
gloo on CPU). The model is a random Qwen2 at the size below with the tests' small byte-level tokenizer (speed does not
depend on the weights; the vocabulary is small, so the LM head is cheap and the decoder layers dominate). Checks
(exit 1 on failure): the N-rank run samples the same rollouts in step 1 (equal rewards and token counts; later steps
are reported) and its parameters after the last step equal the 1-process run's within 1e-3 (fp32 weights).
Measured: the median step time of steps 2.. (step 1 includes warm-up), 1 vs N, and the ratio. Rows are appended to
bench/results.md (what, size, baseline, ours, ratio, device, versions, date) and the table is printed last.
Departures: the same global batch on both sides (strong scaling), so the ratio is the speed-up of one job, not the
throughput of N independent jobs; rollouts on each rank use a full copy of the policy (docs/WORKER.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from safetensors.torch import load_file  # noqa: E402

from softgrpo.config import resolve_hyperparameters  # noqa: E402
from softgrpo.model import SoftTokenLM  # noqa: E402
from softgrpo.train import RunConfig  # noqa: E402
from softgrpo.worker.launcher import torchrun_command, write_run_file  # noqa: E402

GRADER = {"type": "regex", "pattern": "(?s)^(..)*.$", "scope": "answer"}  # variance under a random model
EXAMPLES = [{"prompt": f"{a}+{b}", "answer": str(a + b)} for a in range(8) for b in range(8)]
SIZES = {  # model shape, prompts x group, response tokens, steps
    "full": dict(hidden=1024, layers=16, intermediate=2816, heads=16, kv=4, batch=16, group=8, tokens=128, steps=4),
    "quick": dict(hidden=512, layers=8, intermediate=1408, heads=8, kv=2, batch=8, group=4, tokens=32, steps=3),
    "dry": dict(hidden=32, layers=2, intermediate=48, heads=4, kv=2, batch=2, group=4, tokens=8, steps=2),
}


class Failed(Exception):
    pass


def make_folder(root: pathlib.Path, size: dict) -> pathlib.Path:
    from test_train import make_model_folder  # the tests' tokenizer and manifest

    folder = make_model_folder(root / "base")
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=size["hidden"], num_hidden_layers=size["layers"], intermediate_size=size["intermediate"],
                  num_attention_heads=size["heads"], num_key_value_heads=size["kv"], initializer_range=0.02)
    SoftTokenLM.from_config(config, seed=0).save_pretrained(folder)
    return folder


def run(folder: pathlib.Path, out: pathlib.Path, ranks: int, size: dict, device: str) -> list[dict]:
    hp = resolve_hyperparameters({"n_steps": size["steps"], "batch_size": size["batch"], "group_size": size["group"],
                                  "mini_batch_size": size["batch"] // 2, "max_response_tokens": size["tokens"],
                                  "max_thinking_tokens": size["tokens"] // 2, "learning_rate": 1e-5,
                                  "checkpoint_interval": size["steps"], "top_k": 0, "top_p": 1.0, "answer_top_k": 0,
                                  "answer_top_p": 1.0}, "soft_grpo", len(EXAMPLES))
    run_file = write_run_file(out, base_dir=folder, train_examples=EXAMPLES, validation=None, hp=hp.to_dict(),
                              method="soft_grpo", grader=GRADER, seed=11, resume=False, job_id=None,
                              config=RunConfig(device=device))
    started = time.perf_counter()
    result = subprocess.run(torchrun_command(run_file, ranks), cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise Failed(f"{ranks} ranks: torchrun exit {result.returncode}: {result.stderr[-2000:]}")
    print(f"  {ranks} rank(s): {time.perf_counter() - started:.1f} s wall", flush=True)
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def bench_distributed(device: str, ranks: int, size_name: str, rows: list) -> None:
    size = SIZES[size_name]
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        folder = make_folder(root, size)
        one = run(folder, root / "one", 1, size, device)
        many = run(folder, root / "many", ranks, size, device)
        metrics = lambda events: [e for e in events if e["type"] == "metrics"]  # noqa: E731
        same = [(a["reward_mean"], a["step_tokens"]) == (b["reward_mean"], b["step_tokens"])
                for a, b in zip(metrics(one), metrics(many))]
        if not same[0]:  # later steps sample from weights that differ by rounding: a near-tie may flip there
            raise Failed("step 1: the rollouts differ (rewards or token counts)")
        print(f"  [ok] same rewards and token counts in step 1 (and in {sum(same)} of {len(same)} steps)", flush=True)
        last = f"checkpoints/step-{size['steps']:06d}/model/model.safetensors"
        wa, wb = load_file(root / "one" / last), load_file(root / "many" / last)
        diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
        if diff > 1e-3:
            raise Failed(f"parameters after {size['steps']} steps differ by {diff:.3g}")
        print(f"  [ok] parameters equal within {diff:.3g}", flush=True)
        t1 = statistics.median(m["step_seconds"] for m in metrics(one)[1:])
        tn = statistics.median(m["step_seconds"] for m in metrics(many)[1:])
        backend = "nccl" if device == "cuda" else "gloo"
        params = sum(v.numel() for v in wa.values()) / 1e6
        rows.append((f"train step s, FSDP2 {ranks} ranks ({backend}) vs 1",
                     f"{params:.3g}M params, {size['batch']}x{size['group']} rollouts, {size['tokens']} tokens",
                     t1, tn, t1 / tn, f"max param diff {diff:.2g}, same rollouts in {sum(same)}/{len(same)} steps"))


def write_rows(rows, path: pathlib.Path, device_name: str) -> None:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    new = not path.exists()
    with path.open("a") as f:
        if new:
            f.write("| date | device | torch | what | size | baseline | ours | ratio | notes |\n")
            f.write("|---|---|---|---|---|---|---|---|---|\n")
        for what, size, base, ours, ratio, notes in rows:
            f.write(f"| {date} | {device_name} | {torch.__version__} | {what} | {size} | {base:.4g} | {ours:.4g} | "
                    f"{ratio:.3g} | {notes} |\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller model: a smoke run on GPUs")
    ap.add_argument("--dry-run", action="store_true", help="tiny model, 2 CPU ranks with gloo")
    ap.add_argument("--ranks", type=int, default=None, help="default: every visible GPU (2 on a dry run)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.md"))
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    ranks = args.ranks or (torch.cuda.device_count() if cuda else 2)
    if ranks < 2:
        print(f"distributed: needs at least 2 devices, {ranks} visible: not measured")
        return 0
    if cuda:
        device_name = f"{ranks} x {torch.cuda.get_device_name(0)}"
    else:
        device_name = "cpu (dry run)"
    rows: list = []
    try:
        size = "dry" if args.dry_run else "quick" if args.quick else "full"
        bench_distributed("cuda" if cuda else "cpu", ranks, size, rows)
    except Failed as err:
        print(f"CHECK FAILED: {err}", flush=True)
        return 1
    write_rows(rows, pathlib.Path(args.results), device_name)
    print(f"\nresults on {device_name} (torch {torch.__version__})")
    for what, size, base, ours, ratio, notes in rows:
        print(f"{what}  {size}  1 rank {base:.4g} s  {ranks} ranks {ours:.4g} s  speed-up {ratio:.3g}  {notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
