"""PyTorch reference for the Node engine tests (tests/engine/onnx-parity.test.ts).

Reads a JSON task file, runs the model folder through softgrpo.model (logits of given soft / discrete inputs, with
and without a KV cache) and softgrpo.rollout via softgrpo.serve.generation_result (the decode), writes JSON:

    gpu-worker/.venv/bin/python tests/engine/torch_reference.py TASKS.json OUT.json

TASKS: {"folder": str, "forwards": [{"name", "ids" [B,T,k], "weights" [B,T,k], "split": int|null}],
        "generations": [GenerationRequest...]}
"split" runs the first `split` positions as a prefill and the rest as a second call with the cache.
OUT:   {"forwards": {name: logits [B,T,V] flattened}, "generations": [GenerationResult...]}
"""
import json
import sys

import torch

from softgrpo.model import SoftTokenLM
from softgrpo.serve import generation_result, load_served_model


def logits_of(model: SoftTokenLM, ids, weights, split):
    ids = torch.tensor(ids, dtype=torch.long)
    weights = torch.tensor(weights, dtype=torch.float32)
    with torch.no_grad():
        if split is None:
            return model(ids, weights).logits
        first = model(ids[:, :split], weights[:, :split], use_cache=True)
        second = model(ids[:, split:], weights[:, split:], past_key_values=first.past_key_values, use_cache=True)
        return torch.cat([first.logits, second.logits], dim=1)


def main():
    tasks = json.load(open(sys.argv[1]))
    served = load_served_model(tasks["folder"], "cpu")
    out = {"forwards": {}, "generations": []}
    for f in tasks.get("forwards", []):
        out["forwards"][f["name"]] = logits_of(served.model, f["ids"], f["weights"], f.get("split")).flatten().tolist()
    for request in tasks.get("generations", []):
        out["generations"].append(generation_result(served, request))
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
