"""torch.distributed for training on more than one device: the process group, the device mesh, FSDP2 sharding, and
the few collectives the RL loop needs (docs/WORKER.md "More than one device").

    torchrun --standalone --nproc_per_node=2 -m softgrpo.rank_entry run.json     (what the worker launches)

One process per device; torchrun sets RANK / WORLD_SIZE / LOCAL_RANK. The backend follows the device: gloo on CPU,
NCCL on CUDA, so the same code runs the CPU tests and a multi-GPU machine. A process that torchrun did not start
(WORLD_SIZE unset or 1) trains as before: one process, no process group, no sharding.

What is split how:
    policy (and the KL reference)  FSDP2 `fully_shard` over a 1-D mesh: each decoder layer its own group, the
                                   embeddings / final norm / LM head in the root group (kept unsharded after the
                                   forward, so the loss reads the LM head between forward and backward)
    rollouts                       data parallel: every mini-batch is cut into `world` equal, contiguous parts and
                                   rank r generates part r with the rows' GLOBAL Philox sample indices, so an N-rank
                                   run samples exactly what the 1-rank run samples for the same seed
    rollout weights                each rank generates with a full, unsharded copy of the policy (as verl's rollout
                                   workers do), refreshed from the sharded policy after every optimizer step; a
                                   sharded forward would need every rank to run the same number of decode steps
    rewards / advantages           all-gathered: group advantages over the whole batch, in the 1-rank order
    gradients                      FSDP2 reduce-scatters the MEAN over ranks; each rank's loss is its share of the
                                   global token mean, so the backward scales it by `world` (the sum is the 1-rank
                                   gradient)
    metrics                        gathered so that every rank holds the 1-rank numbers; rank 0 reports them
"""
from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from softgrpo.contract import RESOURCES, evaluate


COLLECTIVE_TIMEOUT_MINUTES = 60


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank r of world processes (world 1: not distributed)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Ranks()


def ranks_from_env() -> Ranks:
    """The torchrun environment of this process (RANK, WORLD_SIZE, LOCAL_RANK), or SINGLE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def backend_for(device: str) -> str:
    """gloo for CPU tensors, NCCL for CUDA tensors."""
    return "nccl" if device.startswith("cuda") else "gloo"


def init_distributed(device: str) -> tuple[Ranks, str, object | None]:
    """Join the process group torchrun set up (once per process). Returns (ranks, this rank's device, device mesh);
    the device of rank r on CUDA is its local GPU `cuda:<LOCAL_RANK>`. Not distributed: (SINGLE, device, None)."""
    ranks = ranks_from_env()
    if not ranks.distributed:
        return ranks, device, None
    from torch.distributed.device_mesh import init_device_mesh

    if device.startswith("cuda"):
        torch.cuda.set_device(ranks.local_rank)
        device = f"cuda:{ranks.local_rank}"
    if not dist.is_initialized():
        # rank 0 evaluates and writes the model folder while the others wait in a collective: allow for long waits
        dist.init_process_group(backend_for(device), timeout=datetime.timedelta(minutes=COLLECTIVE_TIMEOUT_MINUTES))
    mesh = init_device_mesh("cuda" if device.startswith("cuda") else "cpu", (ranks.world,))
    return ranks, device, mesh


def shard_model(model: torch.nn.Module, mesh) -> torch.nn.Module:
    """FSDP2 over `mesh`: one group per decoder layer, the rest in the root group. The root keeps its parameters
    unsharded after the forward: the loss multiplies hidden states by the LM head outside the module's forward."""
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh, reshard_after_forward=False)
    return model


def reshard(model: torch.nn.Module) -> None:
    """Free the root group's unsharded parameters (after no-grad forwards, before reading a state dict)."""
    if hasattr(model, "reshard"):
        model.reshard()


def rank_rows(n_rows: int, rows_per_minibatch: int, ranks: Ranks) -> list[int]:
    """The global rollout rows (0 .. n_rows-1) this rank generates and trains on: its equal, contiguous part of every
    mini-batch, the last (partial) one included, in the order the 1-rank run lays them out. Every mini-batch's size
    must divide by the world size (contract/resources.json, which the API and the worker check: `check_devices`), so
    every rank runs the same optimizer steps."""
    rows = []
    for start in range(0, n_rows, rows_per_minibatch):
        size = min(rows_per_minibatch, n_rows - start)
        if size % ranks.world:
            raise ValueError(f"a mini-batch of {size} rollouts does not split over {ranks.world} ranks")
        share = size // ranks.world
        rows.extend(range(start + ranks.rank * share, start + (ranks.rank + 1) * share))
    return rows


class DevicesError(ValueError):
    """A job that cannot run on its devices: `rule` is the contract/resources.json rule broken ("range" or a rule's
    name); str() is `resources.devices: <detail>`, naming the hyperparameters involved."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"{RESOURCES['param']}: {detail}")
        self.rule, self.detail = rule, detail


def check_devices(devices: int, hyperparameters) -> None:
    """The rules a job on `devices` devices meets, from contract/resources.json (the API checks the same file at
    create: src/contract/resources.ts): the range, then every mini-batch (the last of a step included) divides into
    equal parts, and LoRA trains on one device. hyperparameters: the resolved set (a Hyperparameters or its dict).
    Raises DevicesError naming resources.devices."""
    spec = RESOURCES["devices"]
    if isinstance(devices, bool) or not isinstance(devices, int) or not spec["minimum"] <= devices <= spec["maximum"]:
        raise DevicesError("range", f"must be an integer in [{spec['minimum']}, {spec['maximum']}], got {devices}")
    hp = hyperparameters.to_dict() if hasattr(hyperparameters, "to_dict") else dict(hyperparameters)
    env = {**hp, "devices": devices}
    for rule in RESOURCES["rules"]:
        if "when" in rule and not evaluate(rule["when"], env):
            continue
        if "divides" in rule:
            bound = evaluate(rule["divides"], env)
            broken = bound % devices != 0
        elif "at_most" in rule:
            bound = evaluate(rule["at_most"], env)
            broken = devices > bound
        else:
            raise RuntimeError(f"contract/resources.json rule {rule['name']}: neither \"divides\" nor \"at_most\"")
        if broken:
            values = {**env, "bound": bound}
            detail = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1))), rule["message"])
            raise DevicesError(rule["name"], detail)


def all_gather_objects(value, ranks: Ranks) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (pickled; small things only)."""
    if not ranks.distributed:
        return [value]
    out = [None] * ranks.world
    dist.all_gather_object(out, value)
    return out


def broadcast_from_main(value, ranks: Ranks):
    """Rank 0's value on every rank (a stop command, a decision)."""
    if not ranks.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_across(value: float, ranks: Ranks, device) -> float:
    """The sum of a float over ranks, in float64 so the order of the sum costs nothing visible."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (FSDP2 parameters, clip_grad_norm_'s norm); a plain tensor unchanged."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def sync_rollout_model(policy: torch.nn.Module, rollout_model: torch.nn.Module) -> None:
    """Copy the sharded policy's full weights into the rank's unsharded rollout copy, in place (a static rollout
    engine's CUDA graphs keep pointing at the same storage). Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    reshard(policy)
    full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True))
    with torch.no_grad():
        for name, parameter in rollout_model.named_parameters(remove_duplicate=False):
            parameter.copy_(full[name])


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
