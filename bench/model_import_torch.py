"""PyTorch CPU side of bench/model-import.ts: greedy decode of an imported model folder with SoftTokenLM (float32).

    gpu-worker/.venv/bin/python bench/model_import_torch.py <model-folder> --prompt-tokens 16 --new-tokens 16
        --batch 1 [--threads 2] [--logits out.json]

Same loop as the onnxruntime-node side: one prefill of a fixed pseudo-random prompt (ids i * 7919 % vocab), then
`new-tokens` single-token steps with the KV cache, each row feeding back its argmax. Prints one JSON line:
tokens/s of the decode steps (rows x steps / seconds, prefill excluded), prefill seconds, load seconds, peak resident
memory (ru_maxrss), and with --logits writes the first row's prefill last-position logits (the error comparison).
"""

import argparse
import json
import resource
import sys
import time

import torch

from softgrpo.model import SoftTokenLM


def prompt(batch: int, length: int, vocab: int) -> torch.Tensor:
    ids = [(i * 7919 + 13) % vocab for i in range(length)]
    return torch.tensor([ids] * batch, dtype=torch.long)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--logits")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = SoftTokenLM.from_pretrained(args.folder)
    load_s = time.perf_counter() - t0
    vocab = model.cfg.vocab_size
    ids = prompt(args.batch, args.prompt_tokens, vocab)
    with torch.inference_mode():
        t1 = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill_s = time.perf_counter() - t1
        if args.logits:
            with open(args.logits, "w") as f:
                json.dump(out.logits[0, -1].tolist(), f)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1)
        mask = torch.ones(args.batch, args.prompt_tokens, dtype=torch.long)
        t2 = time.perf_counter()
        for step in range(args.new_tokens):
            mask = torch.cat([mask, torch.ones(args.batch, 1, dtype=torch.long)], 1)
            positions = torch.full((args.batch, 1), args.prompt_tokens + step, dtype=torch.long)
            out = model(token[:, None], attention_mask=mask, position_ids=positions, past_key_values=past,
                        use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1)
        decode_s = time.perf_counter() - t2
    print(json.dumps({
        "engine": "pytorch-cpu-fp32", "batch": args.batch, "tokens_per_s": args.batch * args.new_tokens / decode_s,
        "prefill_s": prefill_s, "load_s": load_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__, "threads": args.threads,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
