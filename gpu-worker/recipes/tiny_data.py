"""Synthetic multi-step arithmetic word problems for the bundled tiny model (models/tiny/data).

Each problem starts with a small count ("Mia has 7 apples."), applies 1-3 events (buy more, give away, buy bags of
several, double, halve) and asks for the final count. The SFT target is one arithmetic line per operation inside
the thinking block, then the boxed answer:

    prompt:  "Mia has 7 apples. She buys 3 bags with 4 apples in each bag. How many apples does Mia have now?"
    target:  "3 * 4 = 12\\n7 + 12 = 19\\n</think>\\n\\boxed{19}"       (the prompt already ends with "<think>\\n")

Splits come from separate seeds; test and validation problems whose text appears in train are dropped.
Lines are the product's dataset format `{"prompt", "answer"}` plus `target` (the SFT completion) and `steps`.

    gpu-worker/.venv/bin/python gpu-worker/recipes/tiny_data.py --out models/tiny/data

Departs from the paper: the paper fine-tunes 1.5B-7B models on real math sets; this is a toy task that lets the
product train and evaluate end to end on a CPU.
"""

import argparse
import json
import random
from pathlib import Path

NAMES = [("Tom", "he", "his"), ("Mia", "she", "her"), ("Sam", "he", "his"), ("Ana", "she", "her"),
         ("Leo", "he", "his"), ("Zoe", "she", "her"), ("Ben", "he", "his"), ("Eva", "she", "her")]
ITEMS = ["apples", "books", "coins", "cards", "pens", "shells", "eggs", "stamps"]
FRIENDS = ["a friend", "{his} sister", "{his} brother", "the teacher", "a neighbor"]
SPLITS = {"train": (1, 6000), "validation": (2, 200), "test": (3, 400)}


def event(rng: random.Random, count: int, he: str, his: str, items: str):
    """One event applied to `count`: (sentence, arithmetic lines, new count)."""
    kinds = ["more", "give", "bags"] + (["double"] if count <= 20 else []) + (["half"] if count % 2 == 0 else [])
    kind = rng.choice(kinds)
    He = he.capitalize()
    if kind == "more":
        b = rng.randint(1, 9)
        verb = rng.choice(["buys", "finds", "gets"])
        return f"{He} {verb} {b} more.", [f"{count} + {b} = {count + b}"], count + b
    if kind == "give" and count > 1:
        b = rng.randint(1, min(9, count - 1))
        return f"{He} gives {b} to {rng.choice(FRIENDS).format(his=his)}.", [f"{count} - {b} = {count - b}"], count - b
    if kind == "bags":
        c, d = rng.randint(2, 4), rng.randint(2, 5)
        return (f"{He} buys {c} bags with {d} {items} in each bag.",
                [f"{c} * {d} = {c * d}", f"{count} + {c * d} = {count + c * d}"], count + c * d)
    if kind == "half":
        return f"{He} gives away half of them.", [f"{count} / 2 = {count // 2}"], count // 2
    return f"{He} doubles the number of {items}.", [f"{count} * 2 = {count * 2}"], count * 2


def make_problem(rng: random.Random) -> dict:
    name, he, his = rng.choice(NAMES)
    items = rng.choice(ITEMS)
    count = rng.randint(2, 15)
    sentences, lines = [f"{name} has {count} {items}."], []
    n_events = rng.choice([1, 1, 2, 2, 3])
    for _ in range(n_events):
        sentence, ops, count = event(rng, count, he, his, items)
        sentences.append(sentence)
        lines.extend(ops)
    sentences.append(f"How many {items} does {name} have now?")
    target = "\n".join(lines) + "\n</think>\n\\boxed{" + str(count) + "}"
    return {"prompt": " ".join(sentences), "answer": str(count), "target": target, "steps": len(lines)}


def generate(seed: int, n: int, exclude: set[str] = frozenset()) -> list[dict]:
    rng, rows, seen = random.Random(seed), [], set(exclude)
    while len(rows) < n:
        row = make_problem(rng)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/tiny/data")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed, n = SPLITS["train"]
    train = generate(seed, n)
    seen = {r["prompt"] for r in train}
    splits = {"train": train}
    for name in ("validation", "test"):
        seed, n = SPLITS[name]
        splits[name] = generate(seed, n, exclude=seen)
        seen |= {r["prompt"] for r in splits[name]}
    for name, rows in splits.items():
        with open(out / f"{name}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"{name}: {len(rows)} problems -> {out / (name + '.jsonl')}")


if __name__ == "__main__":
    main()
