"""Measure the tiny model's accuracy on the held-out test split and write models/tiny/manifest.json.

Greedy and plain temperature-1 sampling (no top-k/top-p, `--samples` per problem; Pass@1 = mean accuracy over all
samples) are discrete, with this script's own small batched decode loop over softgrpo.model's KV cache
(`decode_batch` below); soft thinking (one sample per problem, the SofT-GRPO rollout defaults) uses
softgrpo.rollout.generate. An answer is correct when the
content of the last \\boxed{...} after `</think>` equals the reference integer. The manifest records the metrics,
the sha256 of every model file (run export_onnx first so model.onnx is hashed) and RL hyperparameters for CPU.

    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_eval.py --folder models/tiny --samples 4

Departs from the paper: the paper reports Pass@1 over 32 samples with math-verify grading; a toy integer task needs
only string equality, and 4 samples per problem keep CPU time low.
"""

import argparse
import json
import re
import time
from pathlib import Path

import torch

from softgrpo.model import SoftTokenLM
from softgrpo.model_folder import sha256_file, write_manifest
from softgrpo.rewards import grade_exact
from softgrpo.rollout import RolloutConfig, generate
from softgrpo.tokenizer import ChatTokenizer

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
RL_HYPERPARAMETERS = {  # fast SofT-GRPO on this 0.8M-parameter model on CPU
    "learning_rate": 1e-4,  # 3e-4 made SofT-GRPO diverge on this model (reward fell to ~0.05 by step 15)
    "batch_size": 8,
    "group_size": 8,
    "mini_batch_size": 4,
    "max_response_tokens": 96,
    "max_thinking_tokens": 80,
    "eval_samples": 2,
    "kl_beta": 0.001,
}


def extract_answer(text: str) -> str | None:
    """Content of the last \\boxed{} after </think> (None when there is none)."""
    answer_part = text.split("</think>", 1)[1] if "</think>" in text else ""
    found = BOXED.findall(answer_part)
    return found[-1].strip() if found else None


@torch.no_grad()
def decode_batch(model, prompts: list[list[int]], eos_id: int, pad_id: int, max_new: int, temperature: float,
                 generator: torch.Generator | None) -> list[list[int]]:
    """Left-padded batched decoding with the KV cache; temperature 0 = greedy. Returns generated ids per row."""
    B, P = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, P), pad_id, dtype=torch.long)
    mask = torch.zeros(B, P, dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, P - len(p):] = torch.tensor(p)
        mask[b, P - len(p):] = 1
    out = model(ids, attention_mask=mask, use_cache=True)
    done = torch.zeros(B, dtype=torch.bool)
    generated = []
    for _ in range(max_new):
        logits = out.logits[:, -1].float()
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        generated.append(nxt)
        done |= nxt == eos_id
        if done.all():
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1)
        out = model(nxt[:, None], attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
    rows = torch.stack(generated, 1).tolist()
    return [r[: r.index(eos_id) + 1] if eos_id in r else r for r in rows]


def accuracy(model, tok, rows, samples: int, temperature: float, max_new: int, seed: int, batch: int = 200):
    """Mean correctness over len(rows) * samples decodes, and the mean response length in tokens."""
    gen = torch.Generator().manual_seed(seed)
    jobs = [(r, tok.encode_chat([{"role": "user", "content": r["prompt"]}])) for r in rows for _ in range(samples)]
    correct, lengths = 0, 0
    for i in range(0, len(jobs), batch):
        chunk = jobs[i : i + batch]
        outs = decode_batch(model, [p for _, p in chunk], tok.eos_id, tok.pad_id, max_new, temperature, gen)
        for (row, _), out in zip(chunk, outs):
            correct += extract_answer("<think>\n" + tok.decode(out)) == str(row["answer"])
            lengths += len(out)
    return correct / len(jobs), lengths / len(jobs)


def soft_thinking_accuracy(model, tok, rows, max_new: int, seed: int, batch: int = 200):
    """One softgrpo.rollout sample per problem with the SofT-GRPO rollout defaults (tau 1, top_k 5, top_p 0.95,
    k 5, tau_g 0.1, lambda 1; same settings after thinking), graded by rewards.grade_exact."""
    cfg = RolloutConfig(mode="soft", max_response_tokens=max_new, max_thinking_tokens=max_new)
    correct = 0.0
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        prompts = [tok.encode_chat([{"role": "user", "content": r["prompt"]}]) for r in chunk]
        with torch.no_grad():
            rollouts = generate(model, tok, prompts, cfg, seed=seed, samples=list(range(i, i + len(chunk))))
        correct += sum(grade_exact(ro.answer_text, r) for ro, r in zip(rollouts, chunk))
    return correct / len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="models/tiny")
    ap.add_argument("--split", default="test")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N problems (0 = all)")
    ap.add_argument("--no-manifest", action="store_true", help="print metrics only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    folder = Path(args.folder)
    model, tok = SoftTokenLM.from_pretrained(folder), ChatTokenizer.from_pretrained(folder)
    rows = [json.loads(line) for line in open(folder / "data" / f"{args.split}.jsonl")]
    rows = rows[: args.limit] if args.limit else rows
    t0 = time.time()
    greedy, greedy_len = accuracy(model, tok, rows, 1, 0.0, args.max_new, args.seed)
    sampled, sampled_len = accuracy(model, tok, rows, args.samples, 1.0, args.max_new, args.seed)
    soft = soft_thinking_accuracy(model, tok, rows, args.max_new, args.seed)
    metrics = {
        "eval_split": args.split,
        "eval_problems": len(rows),
        "greedy_accuracy": round(greedy, 4),
        "pass@1_temperature_1": round(sampled, 4),
        "samples_per_problem": args.samples,
        "mean_response_tokens_greedy": round(greedy_len, 1),
        "mean_response_tokens_sampled": round(sampled_len, 1),
        "soft_thinking_pass@1": round(soft, 4),
        "soft_thinking_samples_per_problem": 1,
        "decoding": "greedy / pass@1: discrete, recipes/tiny_eval.py decode_batch (KV cache), temperature 1 without "
                    "top-k/top-p; soft_thinking: softgrpo.rollout.generate with the SofT-GRPO rollout defaults",
        "grader": "string equality of the last \\boxed{} after </think>",
        "eval_seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(metrics, indent=2))
    if args.no_manifest:
        return
    train_log = folder / "train_log.json"
    if train_log.is_file():
        metrics["training"] = json.loads(train_log.read_text())
    data = {s: {"path": f"data/{s}.jsonl", "sha256": sha256_file(folder / "data" / f"{s}.jsonl"),
                "lines": sum(1 for _ in open(folder / "data" / f"{s}.jsonl"))}
            for s in ("train", "validation", "test")}
    manifest = write_manifest(
        folder, base="tiny-arith", step=0, context_length=model.cfg.max_position_embeddings, metrics=metrics,
        parameters=model.num_parameters(), data=data, recommended_hyperparameters=RL_HYPERPARAMETERS,
        recipe="gpu-worker/recipes (tiny_data.py, tiny_tokenizer.py, tiny_sft.py, softgrpo.export_onnx, tiny_eval.py)",
    )
    print(f"manifest -> {folder / 'manifest.json'} ({len(manifest['files'])} files hashed)")


if __name__ == "__main__":
    main()
