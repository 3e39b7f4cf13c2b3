"""PyTorch reference for the Node engine tests (tests/engine/onnx-parity.test.ts), in one Python process:

1. logits of softgrpo.model for given soft / discrete inputs, with and without a KV cache, written to OUT.json;
2. then the real `serve` HTTP server (softgrpo.serve, rollout underneath) on a free port for the same model folder,
   announced as a line `{"port": N}` on stdout; it runs until the test kills the process.

    gpu-worker/.venv/bin/python tests/engine/torch_reference.py TASKS.json OUT.json

TASKS: {"folder": str, "model_id": str, "forwards": [{"name", "ids" [B,T,k], "weights" [B,T,k], "split": int|null}]}
"split" runs the first `split` positions as a prefill and the rest as a second call with the cache.
OUT:   {"forwards": {name: logits [B,T,V] flattened}}
"""
import json
import sys

import torch

from softgrpo.model import SoftTokenLM
from softgrpo.serve import load_served_model, make_server


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
    forwards = {f["name"]: logits_of(served.model, f["ids"], f["weights"], f.get("split")).flatten().tolist()
                for f in tasks["forwards"]}
    json.dump({"forwards": forwards}, open(sys.argv[2], "w"))
    server = make_server({tasks["model_id"]: served}, "127.0.0.1", 0)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
