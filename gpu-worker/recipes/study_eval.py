"""Test-split evaluation of one model folder for recipes/study.py: N problems x S samples, cached as JSON.

Not a script of its own; study.py calls `evaluate_test` for the base model and every trained run, in two inference
modes (soft thinking and discrete tokens). Every model is sampled with the same seed (`TEST_SEED`) and the same
global sample indices, so the Philox streams are common random numbers: differences between models are not noise of
the sampler.

Metrics per model and mode (SOFT_GRPO.md section 4):
    pass@k          the unbiased estimator 1 - C(S-c, k) / C(S, k) (softgrpo.metrics.pass_at_k), mean over
                    problems; the reference code's "any correct among the first k" is not reported
    maj@k           majority vote over the last-\\boxed{} answers of k samples (samples without a box do not vote;
                    ties go to the answer seen first), the voted answer graded with the study's grader; averaged
                    over the S // k disjoint blocks of k samples of each problem (the paper votes once over the
                    first k: same expectation, less variance)
    thinking_length mean Rollout.n_thinking (steps while thinking, `</think>` included)
Metrics whose k exceeds S are left out (not reported as 1.0).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from softgrpo.data import example_messages
from softgrpo.metrics import mean, pass_at_k
from softgrpo.model import SoftTokenLM
from softgrpo.model_folder import sha256_file
from softgrpo.rewards import last_boxed
from softgrpo.rollout import RolloutConfig
from softgrpo.tokenizer import ChatTokenizer
from softgrpo.rollout_engine import make_rollout_engine, rollouts_in_chunks

TEST_SEED = 20_261_201  # one fixed Philox seed for every test evaluation (common random numbers)
PASS_KS = (1, 2, 4, 8, 16, 32)
MAJORITY_KS = (8, 32)
EVAL_CHUNK = 256  # rows per generate() call; sample indices stay global, so the chunk does not change results


def boxed_answer(answer_text: str) -> str | None:
    """The vote of one sample: its last \\boxed{} content, trimmed (string identity decides which votes agree)."""
    answer = last_boxed(answer_text)
    return None if answer is None else answer.strip()


def majority_answer(answers: list[str | None]) -> str | None:
    """The most frequent non-None answer (ties: the one seen first), or None when no sample gave one."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    return max(counts, key=counts.get) if counts else None  # max keeps the first of equal counts


def majority_correct(answers: list[str | None], example: dict, k: int, grader: Callable[[str, dict], float]) -> float:
    """Mean correctness of the majority vote over each disjoint block of k answers of one problem."""
    votes = [majority_answer(answers[b * k:(b + 1) * k]) for b in range(len(answers) // k)]
    return mean(0.0 if v is None else float(grader(f"\\boxed{{{v}}}", example) >= 1.0) for v in votes)


def summarize(correct: list[list[int]], answers: list[list[str | None]], thinking: list[list[int]],
              examples: list[dict], grader: Callable[[str, dict], float]) -> dict[str, float]:
    """pass@k, maj@k (k <= S) and mean thinking length from per-problem, per-sample results ([N][S] lists)."""
    n_samples = len(correct[0])
    metrics = {f"pass@{k}": mean(pass_at_k(n_samples, sum(row), k) for row in correct)
               for k in PASS_KS if k <= n_samples}
    metrics.update({f"maj@{k}": mean(majority_correct(row, ex, k, grader) for row, ex in zip(answers, examples))
                    for k in MAJORITY_KS if k <= n_samples})
    metrics["thinking_length"] = mean(t for row in thinking for t in row)
    return metrics


def evaluate_test(model_folder: Path, examples: list[dict], cfg: RolloutConfig, n_samples: int,
                  grader: Callable[[str, dict], float], cache: Path, device: str = "cpu") -> dict:
    """Evaluate (or read from `cache`) a model folder on `examples` x n_samples with rollout settings `cfg`.

    The cache is reused only when its settings (weights hash, rollout config, sizes, seed) equal this call's;
    otherwise the model is evaluated again and the cache rewritten. Returns {"settings", "metrics", "seconds",
    "correct", "answers", "thinking"} (the last three per problem and sample).
    """
    settings = {"weights_sha256": sha256_file(model_folder / "model.safetensors"), "rollout": asdict(cfg),
                "n_problems": len(examples), "n_samples": n_samples, "seed": TEST_SEED}
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("settings") == json.loads(json.dumps(settings)):
            return cached
        print(f"  {cache}: settings changed, evaluating again", flush=True)
    started = time.perf_counter()
    model = SoftTokenLM.from_pretrained(model_folder, device=device).eval()
    tokenizer = ChatTokenizer.from_pretrained(model_folder)
    prompts = [tokenizer.encode_chat(example_messages(ex)) for ex in examples]
    rollout = make_rollout_engine("plain", "torch", model, tokenizer, max(len(p) for p in prompts))
    with torch.no_grad():
        rollouts = rollouts_in_chunks(rollout, [p for p in prompts for _ in range(n_samples)], cfg, TEST_SEED,
                                      EVAL_CHUNK)
    rows = [rollouts[i * n_samples:(i + 1) * n_samples] for i in range(len(examples))]
    correct = [[int(grader(r.answer_text, ex) >= 1.0) for r in row] for row, ex in zip(rows, examples)]
    answers = [[boxed_answer(r.answer_text) for r in row] for row in rows]
    thinking = [[int(r.n_thinking) for r in row] for row in rows]
    result = {"settings": settings, "metrics": summarize(correct, answers, thinking, examples, grader),
              "seconds": time.perf_counter() - started, "correct": correct, "answers": answers, "thinking": thinking}
    write_json(cache, result)
    return result


def write_json(path: Path, data) -> None:
    """Write JSON under a temporary name and rename it into place: an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
