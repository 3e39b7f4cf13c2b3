"""CPU timing of the PyTorch engine (softgrpo.rollout through softgrpo.serve.generation_result) for bench/engine.ts.

Reads a list of GenerationRequest JSON objects (the Node engine's request), runs each `repeats` times after one
warm-up, and prints one JSON line per request: {"n", "latency_ms": [..], "tokens": [..]} (tokens = generated steps
summed over the samples). Torch runs with `--threads` intra-op threads, the same number the Node run gives
onnxruntime, so the comparison is per thread on the same CPU.

    gpu-worker/.venv/bin/python gpu-worker/bench/bench_cpu_rollout.py MODEL_FOLDER REQUESTS.json --repeats 3 --threads 1
"""
import argparse
import json
import time

import torch

from softgrpo.serve import generation_result, load_served_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("requests")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    served = load_served_model(args.folder, "cpu")
    for request in json.load(open(args.requests)):
        generation_result(served, request)  # warm-up
        latency, tokens = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = generation_result(served, request)
            latency.append((time.perf_counter() - start) * 1000)
            tokens.append(sum(len(s["token_ids"]) for s in result["samples"]))
        print(json.dumps({"n": len(request["samples"]), "latency_ms": latency, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
