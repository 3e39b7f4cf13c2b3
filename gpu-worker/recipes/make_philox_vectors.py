"""Write tests/vectors/philox.json: the shared Philox and sampling test vectors (format in docs/CONTRACTS.md).

Python (softgrpo.philox / softgrpo.sampler, float32) computes them; the TypeScript engine and the Triton kernels are
tested against them. Logits are multiples of 1/256 so they are exact in float32 and float64 alike. The Philox words
are cross-checked against an independent scalar Python implementation before anything is written.

Run from the repository root:
    gpu-worker/.venv/bin/python gpu-worker/recipes/make_philox_vectors.py [--out tests/vectors/philox.json]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from softgrpo.philox import MASK32, gumbel, philox4x32, seed_key, uniforms
from softgrpo.sampler import SoftStepConfig, discrete_step, soft_token_step

RANDOM123_KNOWN_ANSWERS = [  # (key, counter, out) from Random123's kat_vectors
    ((0, 0), (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32, MASK32), (MASK32,) * 4, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0xA4093822, 0x299F31D0), (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def scalar_philox(key: tuple[int, int], counter: tuple[int, ...]) -> tuple[int, ...]:
    """Plain-int Philox4x32-10, written independently of the vectorised torch version."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
        k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
    return c0, c1, c2, c3


def philox_cases(rng: random.Random) -> list[dict]:
    cases = [(key, counter) for key, counter, _ in RANDOM123_KNOWN_ANSWERS]
    cases += [((rng.getrandbits(32), rng.getrandbits(32)), tuple(rng.getrandbits(32) for _ in range(4)))
              for _ in range(12)]
    cases += [(seed_key(seed), (slot, step, sample, stream))
              for seed, slot, step, sample, stream in [(0, 0, 0, 0, 0), (1, 4, 17, 3, 0), (2**40 + 7, 0, 5, 1, 1)]]
    out = []
    for key, counter in cases:
        words = tuple(int(w) for w in philox4x32(key, [torch.tensor(c) for c in counter]))
        assert words == scalar_philox(key, counter), (key, counter)
        out.append({"key": list(key), "counter": list(counter), "out": list(words)})
    for entry, (_, _, expected) in zip(out, RANDOM123_KNOWN_ANSWERS):
        assert tuple(entry["out"]) == expected
    return out


def uniform_cases(rng: random.Random) -> list[dict]:
    coords = [(0, 0, 0, 0, 0), (0, 0, 0, 0, 1), (1, 0, 0, 1, 0), (42, 3, 7, 2, 0), (2**32, 0, 0, 0, 0),
              (2**53 - 1, 63, 8191, 4, 1)]
    coords += [(rng.randrange(2**53), rng.randrange(64), rng.randrange(10000), rng.randrange(8), rng.randrange(2))
               for _ in range(24)]
    out = []
    for seed, sample, step, slot, stream in coords:
        u = float(uniforms(seed, sample, step, slot, stream))
        g = float(gumbel(seed, sample, step, slot, stream, clamp=True))
        out.append({"seed": seed, "sample": sample, "step": step, "slot": slot, "stream": stream, "u": u, "gumbel": g})
    return out


def random_logits(rng: random.Random, vocab: int, ties: bool) -> list[float]:
    logits = [rng.randrange(-1024, 1024) / 256 for _ in range(vocab)]
    if ties:  # copy the largest logit onto a few other ids (including higher and lower ones)
        top = max(range(vocab), key=lambda i: logits[i])
        for i in rng.sample(range(vocab), 3):
            logits[i] = logits[top]
    return logits


def soft_step_cases(rng: random.Random) -> list[dict]:
    out = []
    for case in range(30):
        vocab = rng.randrange(10, 51)
        ties = case % 4 == 0
        noise = 0.0 if case % 3 == 0 else rng.choice([0.5, 1.0, 1.0])
        cfg = SoftStepConfig(
            temperature=rng.choice([1.0, 0.6, 1.5]),
            top_k=rng.choice([0, 3, 5, 30]),
            top_p=rng.choice([1.0, 0.95, 0.8, 0.5]),
            min_p=rng.choice([0.0, 0.0, 0.001, 0.1]),
            max_topk=1 + case % 6,
            gumbel_tau=rng.choice([0.1, 0.5, 1.0]),
            noise_scale=noise,
        )
        seed, sample, step = rng.randrange(2**53), rng.randrange(64), rng.randrange(4096)
        logits = random_logits(rng, vocab, ties)
        s = soft_token_step(torch.tensor([logits], dtype=torch.float32), cfg, seed, torch.tensor([sample]),
                            torch.tensor([step]))
        out.append({"logits": logits, "config": cfg.to_dict(), "seed": seed, "sample": sample, "step": step,
                    "ids": s.ids[0].tolist(), "gp": s.gp[0].tolist(), "weights": s.weights[0].tolist(),
                    "emitted": int(s.emitted[0]), "entropy": float(s.entropy[0])})
    return out


def discrete_step_cases(rng: random.Random) -> list[dict]:
    out = []
    for case in range(30):
        vocab = rng.randrange(10, 51)
        config = {
            "temperature": 0.0 if case % 7 == 0 else rng.choice([1.0, 0.6, 1.5]),
            "top_k": rng.choice([0, 1, 3, 5, 30]),
            "top_p": rng.choice([1.0, 0.95, 0.8, 0.5]),
            "min_p": rng.choice([0.0, 0.0, 0.05]),
        }
        seed, sample, step = rng.randrange(2**53), rng.randrange(64), rng.randrange(4096)
        logits = random_logits(rng, vocab, ties=case % 4 == 0)
        token = discrete_step(torch.tensor([logits], dtype=torch.float32), config["temperature"], config["top_k"],
                              config["top_p"], config["min_p"], seed, torch.tensor([sample]), torch.tensor([step]))
        out.append({"logits": logits, "config": config, "seed": seed, "sample": sample, "step": step,
                    "token": int(token[0])})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/vectors/philox.json")
    args = parser.parse_args()
    rng = random.Random(20261127)
    vectors = {"philox": philox_cases(rng), "uniform": uniform_cases(rng), "soft_step": soft_step_cases(rng),
               "discrete_step": discrete_step_cases(rng)}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = [f' "{name}": [\n' + ",\n".join("  " + json.dumps(case) for case in cases) + "\n ]"
                for name, cases in vectors.items()]
    path.write_text("{\n" + ",\n".join(sections) + "\n}\n")  # one case per line: readable diffs
    print(f"wrote {path}: " + ", ".join(f"{name} {len(cases)}" for name, cases in vectors.items()))


if __name__ == "__main__":
    main()
