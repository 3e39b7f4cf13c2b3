"""Run a short SofT-GRPO (or GRPO) fine-tune of the bundled tiny model on CPU and print its reward curve.

Hyperparameters are the model manifest's `recommended_hyperparameters` (the "auto" path of the product) with
n_steps set here; the grader is the product default (math-verify on the last \\boxed{}). Validation Pass@1 is
measured before and after on the first --eval-prompts validation problems. The table at the end lists, per step,
the mean training reward (the curve the issue asks for), accuracy, KL and thinking length.

    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_rl_curve.py --steps 30 [--method grpo] [--set lr=...]

Departs from the paper: a 0.8M-parameter toy model, a few dozen steps and the manifest's CPU-sized batch instead
of 64 prompts x 8 rollouts at up to 8192 tokens; the learning rate is the manifest's (1e-6 is for 1.5B+ models).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from softgrpo.config import resolve_hyperparameters
from softgrpo.data import load_jsonl
from softgrpo.rewards import make_grader
from softgrpo.train import train

REPO = Path(__file__).resolve().parents[2]


def parse_overrides(pairs: list[str]) -> dict:
    """["learning_rate=1e-4", ...] -> {"learning_rate": 0.0001} (values parsed as JSON when possible)."""
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models/tiny"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--method", default="soft_grpo", choices=["soft_grpo", "grpo"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-prompts", type=int, default=48, help="validation problems for Pass@1 (0 = none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="checkpoint folder (default: a temporary folder)")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides, e.g. learning_rate=1e-4")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = Path(args.model)
    manifest = json.loads((model / "manifest.json").read_text())
    train_examples = load_jsonl(model / "data/train.jsonl")
    validation = load_jsonl(model / "data/validation.jsonl")[:args.eval_prompts] if args.eval_prompts else None
    raw = {"n_steps": args.steps, "checkpoint_interval": args.steps, "eval_interval": args.steps,
           **parse_overrides(args.set)}
    hp = resolve_hyperparameters(raw, args.method, len(train_examples), manifest, manifest.get("context_length"))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tiny_rl_"))
    print(f"# {args.method} on {model} for {hp.n_steps} steps, {hp.batch_size} prompts x {hp.group_size} rollouts,"
          f" lr {hp.learning_rate}, loss {hp.loss}, threads {args.threads}, out {out}", flush=True)

    rows, evals, t0 = [], [], time.perf_counter()
    for event in train(model, train_examples, hp, args.method, make_grader({"type": "math"}), out,
                       validation_examples=validation, seed=args.seed):
        if event["type"] == "metrics":
            rows.append(event)
            print(f"step {event['step']:3d}  reward {event['reward_mean']:.3f}  kl {event.get('kl', 0):.4f}  "
                  f"ratio [{event['ratio_min']:.2f}, {event['ratio_max']:.2f}]  think {event['thinking_length']:.1f}"
                  f"  answer {event['answer_length']:.1f}  {event['step_seconds']:.1f}s", flush=True)
        elif event["type"] == "eval":
            evals.append(event)
            print(f"eval  step {event['step']:3d}  pass@1 {event['pass_at_1']:.3f}  "
                  f"({event['n_prompts']} prompts x {event['samples_per_prompt']})", flush=True)

    print(f"\n| step | reward mean | accuracy | KL | thinking length |  ({time.perf_counter() - t0:.0f}s total)")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['reward_mean']:.3f} | {r['accuracy']:.3f} | {r.get('kl', 0):.4f} | "
              f"{r['thinking_length']:.1f} |")
    fifth = max(1, len(rows) // 5)
    first = sum(r["reward_mean"] for r in rows[:fifth]) / fifth
    last = sum(r["reward_mean"] for r in rows[-fifth:]) / fifth
    print(f"\nmean training reward, first {fifth} steps: {first:.3f}; last {fifth} steps: {last:.3f}")
    if len(evals) >= 2:
        print(f"validation pass@1: step 0 {evals[0]['pass_at_1']:.3f} -> step {evals[-1]['step']} "
              f"{evals[-1]['pass_at_1']:.3f}")


if __name__ == "__main__":
    main()
