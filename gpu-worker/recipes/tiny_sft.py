"""Supervised fine-tuning of the bundled tiny Qwen2-architecture model on the synthetic arithmetic problems.

Trains from random initialisation on models/tiny/data/train.jsonl (run tiny_data.py and tiny_tokenizer.py first),
loss on the assistant completion only (`<think>\\n` is part of the prompt, as the chat template renders it), and
writes config.json + model.safetensors (fp32, Hugging Face key names) into the model folder. CPU, a few minutes.
One thread: on a 2-core machine shared with other jobs, two OpenMP threads ran slower than one (oversubscription).

    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_sft.py --folder models/tiny --steps 650 --batch 16 --threads 1

Departs from the paper: SofT-GRPO starts from pretrained instruct / distilled models; here SFT from scratch makes
a base model that solves part of the toy task, leaving room for RL (deliberately short training).
"""

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from softgrpo.model import SoftTokenLM
from softgrpo.tokenizer import ChatTokenizer


def model_config(vocab_size: int, context: int) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "hidden_act": "silu",
        "max_position_embeddings": context,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "initializer_range": 0.02,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "torch_dtype": "float32",
    }


def encode_examples(tok: ChatTokenizer, path: Path) -> list[tuple[list[int], int]]:
    """(prompt + completion ids, prompt length) per training line."""
    out = []
    for line in open(path):
        row = json.loads(line)
        prompt = tok.encode_chat([{"role": "user", "content": row["prompt"]}])
        completion = tok.encode(row["target"]) + [tok.eos_id]
        out.append((prompt + completion, len(prompt)))
    return out


def batch_tensors(examples, pad_id: int):
    """Right-padded inputs [B, T] and targets [B, T] (-100 outside the completion)."""
    T = max(len(ids) for ids, _ in examples) - 1
    inputs = torch.full((len(examples), T), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), T), -100, dtype=torch.long)
    for b, (ids, n_prompt) in enumerate(examples):
        seq = torch.tensor(ids)
        inputs[b, : len(ids) - 1] = seq[:-1]
        targets[b, n_prompt - 1 : len(ids) - 1] = seq[n_prompt:]
    return inputs, targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="models/tiny")
    ap.add_argument("--steps", type=int, default=650)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    tok = ChatTokenizer.from_pretrained(folder)
    examples = encode_examples(tok, folder / "data" / "train.jsonl")
    longest = max(len(ids) for ids, _ in examples)
    assert longest <= args.context, f"a training example has {longest} tokens > context {args.context}"

    model = SoftTokenLM.from_config(model_config(tok.vocab_size, args.context), seed=args.seed).train()
    print(f"params {model.num_parameters():,}  examples {len(examples)}  longest {longest} tokens")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)

    def lr_at(step):  # linear warmup, cosine decay to 10%
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(args.seed)
    order, pos, t0 = [], 0, time.time()
    for step in range(args.steps):
        if pos + args.batch > len(order):
            order, pos = list(range(len(examples))), 0
            rng.shuffle(order)
        inputs, targets = batch_tensors([examples[i] for i in order[pos : pos + args.batch]], tok.pad_id)
        pos += args.batch
        logits = model(inputs).logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  lr {lr_at(step):.2e}  {time.time() - t0:6.1f}s", flush=True)
    seconds = time.time() - t0
    model.eval().save_pretrained(folder)
    (folder / "train_log.json").write_text(json.dumps({
        "recipe": "gpu-worker/recipes/tiny_sft.py", "steps": args.steps, "batch_size": args.batch, "lr": args.lr,
        "seed": args.seed, "final_loss": round(loss.item(), 4), "train_seconds": round(seconds, 1),
        "threads": args.threads, "parameters": model.num_parameters(),
    }, indent=2) + "\n")
    print(f"trained {args.steps} steps in {seconds:.0f}s -> {folder}")


if __name__ == "__main__":
    main()
