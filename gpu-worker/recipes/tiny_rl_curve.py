"""Run a short SofT-GRPO (or GRPO) fine-tune of the bundled tiny model on CPU and print its reward curve.

Hyperparameters are the model manifest's `recommended_hyperparameters` (the "auto" path of the product) with
n_steps and any --set overrides; the grader is the product default (math-verify on the last \\boxed{}). Per step
the table lists the mean training reward (the curve issue 3 asks for), accuracy, KL and thinking length; with
--baseline also the untrained model's reward on the same prompts and Philox seeds, because training rewards of
different prompts differ more from prompt difficulty than from a few dozen updates. Optional validation Pass@1
before and after on the first --eval-prompts validation problems.

The run reported for issue 3 (4 training problems revisited every step, ~5 minutes on a loaded 2-core CPU):
    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_rl_curve.py --steps 25 --train-prompts 4 --eval-prompts 0 \\
        --baseline --set learning_rate=1e-4 batch_size=4 group_size=16 mini_batch_size=2
Over the whole training set: --steps 30 --eval-prompts 64 [--method grpo] [--set learning_rate=1e-4].

Departs from the paper: a 0.8M-parameter toy model, a few dozen steps and CPU-sized batches instead of 64 prompts
x 8 rollouts at up to 8192 tokens; the learning rate is far above the paper's 1e-6 (which is for 1.5B+ models).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from softgrpo.config import resolve_hyperparameters, rollout_config
from softgrpo.data import example_messages, load_jsonl
from softgrpo.model import SoftTokenLM
from softgrpo.rewards import make_grader
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.train import SEED_ROLLOUT, derive_seed, generate_in_chunks, prompt_indices, train

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


def baseline_rewards(model_folder: Path, examples: list[dict], hp, method: str, grader, seed: int) -> list[float]:
    """Per-step mean reward of the untrained model on the very prompts and Philox seeds of each training step.

    Training rewards of different steps come from different prompts, whose difficulty varies a lot; this paired
    baseline removes that: step 1 equals the trained run's step 1 exactly, later differences are the training.
    """
    model, tokenizer = SoftTokenLM.from_pretrained(model_folder).eval(), ChatTokenizer.from_pretrained(model_folder)
    cfg, out = rollout_config(hp, method), []
    for step in range(hp.n_steps):
        indices = prompt_indices(len(examples), seed, step * hp.batch_size, hp.batch_size)
        prompts = [tokenizer.encode_chat(example_messages(examples[i])) for i in indices for _ in range(hp.group_size)]
        rollouts = generate_in_chunks(model, tokenizer, prompts, cfg, derive_seed(seed, SEED_ROLLOUT, step), None)
        rewards = [grader(r.answer_text, examples[indices[j // hp.group_size]]) for j, r in enumerate(rollouts)]
        out.append(sum(rewards) / len(rewards))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models/tiny"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--method", default="soft_grpo", choices=["soft_grpo", "grpo"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-prompts", type=int, default=0,
                        help="train on the first N training problems only (0 = all): a short run then revisits them")
    parser.add_argument("--eval-prompts", type=int, default=48, help="validation problems for Pass@1 (0 = none)")
    parser.add_argument("--baseline", action="store_true",
                        help="also score the untrained model on each step's prompts and seeds (paired comparison)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="checkpoint folder (default: a temporary folder)")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides, e.g. learning_rate=1e-4")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = Path(args.model)
    manifest = json.loads((model / "manifest.json").read_text())
    train_examples = load_jsonl(model / "data/train.jsonl")
    if args.train_prompts:
        train_examples = train_examples[:args.train_prompts]
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

    base = baseline_rewards(model, train_examples, hp, args.method, make_grader({"type": "math"}), args.seed) \
        if args.baseline else None
    print(f"\n| step | reward mean | accuracy | KL | thinking length |"
          + (" untrained model, same prompts and seeds | difference |" if base else "")
          + f"  ({time.perf_counter() - t0:.0f}s total)")
    print("|---|---|---|---|---|" + ("---|---|" if base else ""))
    for i, r in enumerate(rows):
        extra = f" {base[i]:.3f} | {r['reward_mean'] - base[i]:+.3f} |" if base else ""
        print(f"| {r['step']} | {r['reward_mean']:.3f} | {r['accuracy']:.3f} | {r.get('kl', 0):.4f} | "
              f"{r['thinking_length']:.1f} |" + extra)
    fifth = max(1, len(rows) // 5)
    first = sum(r["reward_mean"] for r in rows[:fifth]) / fifth
    last = sum(r["reward_mean"] for r in rows[-fifth:]) / fifth
    print(f"\nmean training reward, first {fifth} steps: {first:.3f}; last {fifth} steps: {last:.3f}")
    if base:
        half = len(rows) // 2
        trained = sum(r["reward_mean"] for r in rows[half:]) / (len(rows) - half)
        untrained = sum(base[half:]) / (len(rows) - half)
        print(f"steps {half + 1}-{len(rows)}: trained {trained:.3f} vs untrained {untrained:.3f} on the same prompts "
              f"and seeds ({trained - untrained:+.3f})")
    if len(evals) >= 2:
        print(f"validation pass@1: step 0 {evals[0]['pass_at_1']:.3f} -> step {evals[-1]['step']} "
              f"{evals[-1]['pass_at_1']:.3f}")


if __name__ == "__main__":
    main()
