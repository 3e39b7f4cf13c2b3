"""Gradient quality of every registered loss: how well gradients of independent batches agree.

    gpu-worker/.venv/bin/python gpu-worker/recipes/gradient_quality.py [--model models/tiny] [--batches 8] \
        [--prompts 4] [--group 16] [--seed 0] [--threads 1] [--out gpu-worker/bench/results-gradient-quality.md]

For each loss in softgrpo.loss.LOSSES (and each input-gradient rule: response inputs detached or not), the script
draws --batches independent batches of --prompts training prompts x --group rollouts with the loss's own rollouts
(soft, Gaussian or discrete, the manifest's recommended sampling settings), computes group advantages from the math
grader and the policy-gradient surrogate at theta_old (token mean of A * log pi, what the first PPO update follows),
and reports:

    loo_cos   the mean leave-one-out cosine between one batch's gradient and the mean of the others: the signal
              share of a batch gradient (1 = every batch points the same way, 0 = pure noise)
    soft / token   the same restricted to the soft steps and to the token steps (`</think>` and answer tokens)
    |g| soft, |g| token   mean gradient norms of those parts

Rollouts are shared by every loss that scores the same kind (the Philox seed depends only on the batch), so the
losses on soft rollouts are compared on identical samples. Departs from the paper: a 0.85M-parameter model and
64 rollouts per batch (the paper: 512 rollouts per step on 1.5B-7B models).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from softgrpo.config import resolve_hyperparameters, rollout_config
from softgrpo.data import example_messages, load_jsonl
from softgrpo.loss import LOSSES, group_advantages, masked_token_mean
from softgrpo.model import SoftTokenLM
from softgrpo.rewards import graded_text, make_grader
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.train import build_batch, derive_seed, generate_in_chunks, prompt_indices, sequence_logprobs

REPO = Path(__file__).resolve().parents[2]
SEED_DIAGNOSTIC = 7
MODES = {"soft": "soft_grpo", "gaussian": "soft_grpo", "discrete": "grpo"}  # rollout kind -> method


def rollout_kind(loss_name: str) -> str:
    return LOSSES[loss_name].rollout if LOSSES[loss_name].rollout != "discrete" else "discrete"


def batches_for(kind, model, tokenizer, examples, manifest, grader, args):
    """--batches independent (batch, advantages) pairs of rollouts of one kind."""
    hp = resolve_hyperparameters({"loss": "soft_gaussian" if kind == "gaussian" else "auto"}, MODES[kind],
                                 len(examples), manifest, manifest.get("context_length"))
    cfg = rollout_config(hp, MODES[kind])
    out = []
    for b in range(args.batches):
        indices = prompt_indices(len(examples), args.seed, b * args.prompts, args.prompts)
        prompts = [tokenizer.encode_chat(example_messages(examples[i])) for i in indices for _ in range(args.group)]
        rollouts = generate_in_chunks(model, tokenizer, prompts, cfg, derive_seed(args.seed, SEED_DIAGNOSTIC, b), 64)
        rewards = torch.tensor([grader(graded_text(r, grader), examples[indices[j // args.group]])
                                for j, r in enumerate(rollouts)])
        advantages = group_advantages(rewards.view(args.prompts, args.group)).flatten()
        out.append(build_batch(rollouts, advantages, "cpu"))
    return out


def flat_grad(model, batch, loss_name, part, detach):
    """Gradient of the surrogate token_mean(A * log pi) restricted to `part` steps ("all" | "soft" | "token")."""
    model.zero_grad(set_to_none=True)
    logp = sequence_logprobs(model, batch, loss_name, detach_response_inputs=detach)[0]
    mask = batch.loss_mask.clone()
    if part == "soft":
        mask = mask * batch.is_soft.float()
    elif part == "token":
        mask = mask * (~batch.is_soft).float()
    n_tokens = float(batch.loss_mask.sum())  # the same denominator for every part: the parts add up to "all"
    masked_token_mean(batch.advantages * logp, mask, n_tokens).backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters() if p.requires_grad])


def loo_cosine(grads: list[torch.Tensor]) -> float:
    """Mean over b of cos(g_b, mean of the others); nan when every gradient is zero."""
    total = torch.stack(grads).sum(0)
    values = []
    for g in grads:
        rest = (total - g) / (len(grads) - 1)
        denom = float(g.norm() * rest.norm())
        if denom > 0:
            values.append(float(g @ rest) / denom)
    return sum(values) / len(values) if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models/tiny"))
    parser.add_argument("--train", help="training JSONL (default: <model>/data/train.jsonl)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", nargs="*", default=sorted(LOSSES))
    parser.add_argument("--out", help="markdown file to append the table to")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.model)
    manifest = json.loads((folder / "manifest.json").read_text())
    examples = load_jsonl(args.train or folder / "data/train.jsonl")
    model, tokenizer = SoftTokenLM.from_pretrained(folder).eval(), ChatTokenizer.from_pretrained(folder)
    grader = make_grader({"type": "math"})
    started = time.perf_counter()
    cache, rows = {}, []
    for loss_name in args.losses:
        kind = rollout_kind(loss_name)
        if kind not in cache:
            cache[kind] = batches_for(kind, model, tokenizer, examples, manifest, grader, args)
        batches = cache[kind]
        soft_fraction = float(sum(b.is_soft.sum() for b in batches) / sum(b.is_soft.numel() for b in batches))
        for detach in (False, True):
            stats = {}
            for part in ("all", "soft", "token"):
                grads = [flat_grad(model, b, loss_name, part, detach) for b in batches]
                stats[part] = (loo_cosine(grads), sum(float(g.norm()) for g in grads) / len(grads))
            rows.append({"loss": loss_name, "rollouts": kind, "detach_response_inputs": detach,
                         "soft_step_fraction": soft_fraction, "loo_cos": stats["all"][0],
                         "loo_cos_soft": stats["soft"][0], "loo_cos_token": stats["token"][0],
                         "norm_soft": stats["soft"][1], "norm_token": stats["token"][1]})
            print(json.dumps(rows[-1]), flush=True)

    header = (f"\n### Gradient quality, {datetime.date.today()} ({platform.node()}, torch {torch.__version__}, "
              f"{args.batches} batches x {args.prompts} prompts x {args.group} rollouts, seed {args.seed}, "
              f"{time.perf_counter() - started:.0f} s)\n\n"
              "| loss | rollouts | response inputs | soft steps | loo_cos | soft | token | abs(g) soft | abs(g) token |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    fmt = lambda v: "-" if v != v else f"{v:.3f}"  # noqa: E731  (nan: no such steps)
    table = header + "".join(
        f"| {r['loss']} | {r['rollouts']} | {'detached' if r['detach_response_inputs'] else 'grad'} | "
        f"{r['soft_step_fraction']:.2f} | {fmt(r['loo_cos'])} | {fmt(r['loo_cos_soft'])} | "
        f"{fmt(r['loo_cos_token'])} | {r['norm_soft']:.4f} | {r['norm_token']:.4f} |\n" for r in rows)
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
