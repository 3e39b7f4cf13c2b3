"""SofT-GRPO / GRPO training: one flat loop (SOFT_GRPO.md sections 1-3).

    for step: sample prompts -> G rollouts each -> rewards -> group advantages
              -> old and reference log-probs on the rebuilt sequences (no grad)
              -> PPO mini-batch updates (AdamW, grad clip) -> metrics -> eval -> checkpoint

`train(...)` is a generator of event dicts (start, metrics, eval, checkpoint, done); the caller (CLI, worker) streams
them. Sending "stop" into the generator (`events.send("stop")`) checkpoints the current step and ends the run.
Run it from the command line with `python -m softgrpo.cli train ...` (see cli.py).

Training rebuilds each rollout exactly as it was generated: prompt tokens and discrete steps as [tok, 0...] with
weights [1, 0...], soft steps as the stored ids with the weights they fed (softmax(gp / tau_g); soft_gaussian: q plus
the stored input noise). The loss is the registered entry `LOSSES[hp.loss]`, called directly on gathered logits.
One input-gradient rule for every method (DETACH_RESPONSE_INPUTS, chosen by measurement; the reference detaches soft
positions only). Old log-probs are computed on the very same micro-batch tensors the update uses, so the importance
ratio of the first update is exactly 1.
Departures from the reference code: forced `</think>` steps (thinking cap, cold stop) are left out of the loss
(they are not policy samples); no sequence packing.

More than one device: the same loop under torchrun (softgrpo.distributed has the whole scheme): the policy sharded
with FSDP2, every mini-batch split into equal parts across ranks with the rows' global Philox indices (so N ranks
sample what 1 rank samples), rewards gathered for group advantages, each rank's loss its share of the global token
mean, metrics gathered. Evaluation runs on rank 0.

Two explicit run-level choices (logged in the start event; never a silent fallback), made through
softgrpo.rollout_engine.make_rollout_engine (the one rollout interface, shared with serve and the recipes):
    rollout_engine "plain":  softgrpo.rollout.generate, the reference (growing KV cache, one Python step per token)
                   "static": softgrpo.gpu_engine (static KV cache; the decode step in CUDA graphs on CUDA with the
                             triton backend, eager elsewhere), one engine kept per (rollout config, batch size)
    backend        "torch":  reference sampler in the static engine; the loss on materialised float32 logits
                   "triton": kernel 1 in the static engine; kernel 2 (kernels.fused_policy_logprob) for the loss,
                             which never materialises the [M, V] logits (CUDA, or CPU under TRITON_INTERPRET=1)
Both backends feed the registered loss the same gathered logits: kernels.gathered_logits_fn(backend) on the final
hidden states.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Iterator

import torch

from softgrpo.checkpoint import (checkpoint_dir, latest_checkpoint, load_training_state, merged_model,
                                 read_state_json, save_model_folder, save_training_state)
from softgrpo.config import Hyperparameters, check_engine_options, rollout_config
from softgrpo.data import example_messages, fit_prompts
from softgrpo.distributed import (all_gather_objects, broadcast_from_main, check_devices, full_tensor,
                                  init_distributed, rank_rows, reshard, shard_model, sum_across, sync_rollout_model)
from softgrpo.kernels import gathered_logits_fn
from softgrpo.loss import LOSSES, Loss, StepData, grpo_objective, group_advantages, masked_token_mean
from softgrpo.metrics import mean, pass_at_k, rollout_summary
from softgrpo.model import SoftTokenLM
from softgrpo.rewards import graded_text
from softgrpo.rollout import Rollout, one_hot_slots
from softgrpo.rollout_engine import make_rollout_engine, rollouts_in_chunks
from softgrpo.tokenizer import ChatTokenizer

SEED_DATA, SEED_ROLLOUT, SEED_EVAL = 1, 2, 3
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The input-embedding gradient rule, one for every method: the embedding lookups of generated (response) inputs,
# soft mixtures and discrete tokens alike, pass gradient into E (a parameter: with tied weights also the LM head);
# the mixture weights themselves are data. Chosen by measurement (docs/results.md, "detach rule"); tests and the
# gradient-quality script can switch it to compare.
DETACH_RESPONSE_INPUTS = False


def derive_seed(seed: int, purpose: int, index: int) -> int:
    """A Philox / torch seed in [0, 2^53) for (run seed, purpose, index): splitmix64 of the three, so nearby steps
    and seeds get unrelated streams."""
    x = (seed * 0x9E3779B97F4A7C15 + purpose * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & (2**53 - 1)


@lru_cache(maxsize=4)
def epoch_order(n_examples: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The seeded permutation of the training prompts for one epoch."""
    generator = torch.Generator().manual_seed(derive_seed(seed, SEED_DATA, epoch))
    return tuple(torch.randperm(n_examples, generator=generator).tolist())


def prompt_indices(n_examples: int, seed: int, start: int, count: int) -> list[int]:
    """Positions start .. start+count-1 of the prompt stream: a fresh seeded permutation of the data per epoch,
    so the stream depends only on (seed, position) and a resumed run continues it exactly."""
    return [epoch_order(n_examples, seed, position // n_examples)[position % n_examples]
            for position in range(start, start + count)]


@dataclass
class SequenceBatch:
    """Rebuilt training input of N rollouts (right-padded to S) and the M response steps to score."""
    ids: torch.Tensor  # [N, S, k] int64
    weights: torch.Tensor  # [N, S, k] float32
    attention_mask: torch.Tensor  # [N, S] int64
    response_input: torch.Tensor  # [N, S] bool: the input at this position is a generated step (soft or discrete)
    rows: torch.Tensor  # [M] int64: the sequence of each response step
    positions: torch.Tensor  # [M] int64: the position whose output predicts the step
    step_ids: torch.Tensor  # [M, k] int64
    gp: torch.Tensor  # [M, k] float32
    tokens: torch.Tensor  # [M] int64
    is_soft: torch.Tensor  # [M] bool
    temperature: torch.Tensor  # [M] float32
    loss_mask: torch.Tensor  # [M] float32: 0 for forced </think>
    advantages: torch.Tensor  # [M] float32
    rollout_logprob: torch.Tensor  # [M] float32: log-prob computed during the rollout
    kept: torch.Tensor  # [M, k] bool: slots the rollout's filters kept
    edge: torch.Tensor  # [M, k] int8: clamp-edge flags of the slots' noise
    step_weights: torch.Tensor  # [M, k] float32: the mixture each step fed forward
    noise_std: torch.Tensor  # [M] float32: soft_gaussian sigma (0 elsewhere)
    step_offset: torch.Tensor | None  # [M, d] float32: soft_gaussian input noise of each step (None: no such rollouts)
    input_offset: torch.Tensor | None  # [N, S, d] float32: the same noise at the positions it was fed

    def step_data(self, soft_rows: torch.Tensor) -> StepData:
        """What a registered loss reads about the steps; soft_rows [M] bool: the rows it scores as soft."""
        return StepData(gp=self.gp, is_soft=soft_rows, kept=self.kept, edge=self.edge, ids=self.step_ids,
                        weights=self.step_weights, offset=self.step_offset, noise_std=self.noise_std)


def build_batch(rollouts: list[Rollout], advantages: torch.Tensor, device) -> SequenceBatch:
    """Rebuild the model input of rollouts: prompt + all steps but the last (nothing is predicted after it). Each
    step feeds the weights (and, for soft_gaussian, the input noise) it fed during the rollout."""
    k = rollouts[0].ids.shape[1]
    lengths = [len(r.prompt_ids) + len(r.tokens) - 1 for r in rollouts]
    N, S = len(rollouts), max(lengths)
    ids = torch.zeros(N, S, k, dtype=torch.long)
    weights = torch.zeros(N, S, k)
    mask = torch.zeros(N, S, dtype=torch.long)
    response_input = torch.zeros(N, S, dtype=torch.bool)
    with_offset = any(r.offset is not None for r in rollouts)
    input_offset = torch.zeros(N, S, rollouts[0].offset.shape[1]) if with_offset else None
    rows, positions = [], []
    for n, r in enumerate(rollouts):
        P, T = len(r.prompt_ids), len(r.tokens)
        prompt_ids, prompt_weights = one_hot_slots(torch.tensor(r.prompt_ids, dtype=torch.long), k)
        ids[n, :P + T - 1] = torch.cat([prompt_ids, r.ids[:-1]])
        weights[n, :P + T - 1] = torch.cat([prompt_weights, r.weights[:-1].float()])
        mask[n, :P + T - 1] = 1
        response_input[n, P:P + T - 1] = True
        if r.offset is not None:
            input_offset[n, P:P + T - 1] = r.offset[:-1]
        rows.append(torch.full((T,), n, dtype=torch.long))
        positions.append(torch.arange(P - 1, P + T - 1))
    cat = lambda name: torch.cat([getattr(r, name) for r in rollouts])  # noqa: E731
    per_step_advantage = torch.cat([advantages[n].expand(len(r.tokens)) for n, r in enumerate(rollouts)])
    step_offset = None
    if with_offset:
        step_offset = torch.cat([r.offset if r.offset is not None else torch.zeros(len(r.tokens), input_offset.shape[2])
                                 for r in rollouts])
    batch = SequenceBatch(ids=ids, weights=weights, attention_mask=mask, response_input=response_input,
                          rows=torch.cat(rows), positions=torch.cat(positions), step_ids=cat("ids"), gp=cat("gp"),
                          tokens=cat("tokens"), is_soft=cat("is_soft"), temperature=cat("temperature").float(),
                          loss_mask=(~cat("forced")).float(), advantages=per_step_advantage.float(),
                          rollout_logprob=cat("logprob"), kept=cat("kept"), edge=cat("edge"),
                          step_weights=cat("weights").float(),
                          noise_std=torch.cat([torch.full((len(r.tokens),), float(r.noise_std)) for r in rollouts]),
                          step_offset=step_offset, input_offset=input_offset)
    return SequenceBatch(**{name: value.to(device) if isinstance(value, torch.Tensor) else value
                            for name, value in vars(batch).items()})


@contextmanager
def inputs_detached(model: SoftTokenLM, positions: torch.Tensor | None):
    """Detach the embedding lookups at `positions` ([N, S] bool; None: nothing) for forwards inside the block."""
    if positions is None:
        yield
        return

    def hook(module, args, output):  # output: [N, S, k, d] rows of E for every slot
        return torch.where(positions[:, :, None, None], output.detach(), output)

    handle = model.model.embed_tokens.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def policy_logprobs(hidden: torch.Tensor, model: SoftTokenLM, batch: SequenceBatch, loss: Loss,
                    backend: str) -> torch.Tensor:
    """log pi [M] of the response steps of `batch` under the registered `loss`, from hidden [M, d].

    kernels.gathered_logits_fn(backend) gives the loss its input (zg [M, k], lse [M]); it takes one temperature, so
    steps are gathered per distinct temperature (at most two: thinking and answer). The torch backend runs in
    float32, as the loss always has; the triton backend takes the model's dtype and accumulates in float32.
    """
    soft_rows = batch.is_soft if loss.scores_soft_steps else torch.zeros_like(batch.is_soft)
    lm_head = model.lm_head_weight
    if backend == "torch":
        hidden, lm_head = hidden.float(), lm_head.float()
    gather = gathered_logits_fn(backend)
    temperatures = batch.temperature.unique().tolist()
    if len(temperatures) == 1:
        zg, lse = gather(hidden, lm_head, batch.step_ids, batch.tokens, soft_rows, temperatures[0])
    else:
        zg = torch.zeros(batch.step_ids.shape, dtype=torch.float32, device=hidden.device)
        lse = torch.zeros(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for temperature in temperatures:
            rows = batch.temperature == temperature
            part_zg, part_lse = gather(hidden[rows], lm_head, batch.step_ids[rows], batch.tokens[rows],
                                       soft_rows[rows], temperature)
            zg, lse = zg.index_put((rows,), part_zg), lse.index_put((rows,), part_lse)
    embedding = model.model.embed_tokens.weight if loss.needs_embedding else None
    return loss.step_logprob(zg, lse, batch.step_data(soft_rows), embedding)


def sequence_logprobs(model: SoftTokenLM, batch: SequenceBatch, loss: str | Loss, with_entropy: bool = False,
                      backend: str = "torch", detach_response_inputs: bool | None = None):
    """Per-step policy log-probs [M] (and full-vocabulary entropies [M] if asked) of a rebuilt batch."""
    loss = LOSSES[loss] if isinstance(loss, str) else loss
    detach = DETACH_RESPONSE_INPUTS if detach_response_inputs is None else detach_response_inputs
    with inputs_detached(model, batch.response_input if detach else None):
        out = model(batch.ids, batch.weights, attention_mask=batch.attention_mask, return_hidden=True,
                    return_logits=False, input_offset=batch.input_offset)
    hidden = out.hidden[batch.rows, batch.positions]  # [M, d]
    logp = policy_logprobs(hidden, model, batch, loss, backend)
    entropy = None
    if with_entropy:  # the entropy bonus needs the full softmax: [M, V] logits whatever the backend
        logits = (hidden.float() @ model.lm_head_weight.float().T) / batch.temperature[:, None]
        log_p = torch.log_softmax(logits, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return logp, entropy


def chunks(items: list, size: int | None) -> list[list]:
    size = size or len(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def generate_in_chunks(model, tokenizer, prompts, cfg, seed, chunk_size) -> list[Rollout]:
    """rollouts_in_chunks with the plain engine: what a training run with rollout_engine="plain" generates for
    these prompts (recipes replay a run's rollouts with it)."""
    return rollouts_in_chunks(make_rollout_engine("plain", "torch", model, tokenizer, 0), prompts, cfg, seed,
                              chunk_size)


@dataclass(frozen=True)
class RunConfig:
    """How a run computes (not what it learns: that is the job's Hyperparameters).

    device: "cpu" | "cuda" (under torchrun, rank r takes cuda:<LOCAL_RANK>); backend "torch" | "triton" and
    rollout_engine "plain" | "static": see the module docstring; micro_batch_size: rollouts per forward inside a
    mini-batch on each rank (default: the rank's whole part of the mini-batch); rollout_batch_size: rows per
    generate() call; export_onnx: add model.onnx to every checkpoint's model folder.
    """
    device: str = "cpu"
    backend: str = "torch"
    rollout_engine: str = "plain"
    micro_batch_size: int | None = None
    rollout_batch_size: int | None = None
    export_onnx: bool = False
    gradient_checkpointing: bool = False  # recompute decoder layers in backward: activations of one layer, not all
    bf16: bool = False  # log-prob forwards (old, reference, PPO) under torch.autocast bfloat16; weights stay float32


def train(model_folder: str | Path, train_examples: list[dict], hp: Hyperparameters, method: str,
          grader: Callable[[str, dict], float], out_dir: str | Path, validation_examples: list[dict] | None = None,
          seed: int = 0, resume: bool = False, job_id: str | None = None,
          run: RunConfig = RunConfig()) -> Iterator[dict]:
    """Run SofT-GRPO (method "soft_grpo") or discrete GRPO ("grpo"); yields event dicts.

    model_folder: base model folder; hp: resolved Hyperparameters; grader: rewards.make_grader(...);
    resume: continue from the latest checkpoint under out_dir if there is one (whatever world size wrote it);
    run: the compute options (checked here, before anything loads).
    Under torchrun (softgrpo.distributed) every rank runs this generator; the events rank 0 yields are the run's
    (eval events come from rank 0 only), and a "stop" sent into rank 0 reaches every rank.
    """
    cuda_graphs = check_engine_options(run.backend, run.rollout_engine, run.device, rollout_config(hp, method))
    ranks, device, mesh = init_distributed(run.device)
    check_devices(ranks.world, hp)
    model_folder, out_dir = Path(model_folder), Path(out_dir)
    base_manifest = _read_json(model_folder / "manifest.json")
    tokenizer = ChatTokenizer.from_pretrained(model_folder)
    model = SoftTokenLM.from_pretrained(model_folder, device=device)
    model.gradient_checkpointing = run.gradient_checkpointing
    autocast = partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16, enabled=run.bf16)
    peft_model = None
    if hp.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                          target_modules=LORA_TARGETS)
        peft_model = get_peft_model(model, lora)  # injects LoRA layers into `model` in place
    # the frozen initial policy for the KL term: with LoRA it is the same network with the adapters disabled
    reference = None
    if hp.kl_beta > 0 and peft_model is None:
        reference = SoftTokenLM.from_pretrained(model_folder, device=device).requires_grad_(False)
    # more than one rank: FSDP2 shards policy and reference; each rank rolls out with a full copy of the policy
    rollout_model = model
    if ranks.distributed:
        rollout_model = SoftTokenLM.from_pretrained(model_folder, device=device).requires_grad_(False)
        shard_model(model, mesh)
        if reference is not None:
            shard_model(reference, mesh)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(trainable.values(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    rollout_cfg = rollout_config(hp, method)
    G, B = hp.group_size, hp.batch_size
    # each prompt plus max_response_tokens fits the manifest's context, or is cut from the left (prompt_truncation)
    def fit(examples: list[dict], source: str) -> list[list[int]]:
        return fit_prompts([tokenizer.encode_chat(example_messages(ex)) for ex in examples], hp.max_response_tokens,
                           base_manifest.get("context_length"), hp.prompt_truncation, source)
    prompt_tokens = fit(train_examples, "training examples")
    context_length = int(base_manifest.get("context_length") or model.cfg.max_position_embeddings)
    validation_prompts = fit(validation_examples or [], "validation examples")
    rollout = make_rollout_engine(run.rollout_engine, run.backend, rollout_model, tokenizer,
                                  max(len(p) for p in prompt_tokens + validation_prompts))

    start_step, history = 0, []
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        state = read_state_json(checkpoint / "state")
        if state["hyperparameters"] != hp.to_dict() or state["method"] != method or state["seed"] != seed:
            raise ValueError(f"{checkpoint}: saved hyperparameters/method/seed differ from this run's; "
                             "resume with the same configuration")
        rng, state = load_training_state(checkpoint / "state", model, optimizer, ranks)
        torch.set_rng_state(rng["torch"])
        start_step, history = state["step"], state["history"]
    if ranks.distributed:
        sync_rollout_model(model, rollout_model)

    def save_checkpoint(step: int, metrics: dict) -> dict:
        folder = checkpoint_dir(out_dir, step)
        manifest = {"base": base_manifest.get("base") or base_manifest.get("name") or model_folder.name,
                    "step": step, "job_id": job_id, "context_length": context_length, "metrics": metrics,
                    "eos": tokenizer.eos_token, "method": method}
        if base_manifest.get("recommended_hyperparameters"):
            manifest["recommended_hyperparameters"] = base_manifest["recommended_hyperparameters"]
        if ranks.is_main:  # the rollout copy holds the full policy (refreshed after every step)
            save_model_folder(folder / "model", merged_model(rollout_model, peft_model).eval(), model_folder,
                              manifest, run.export_onnx)
        reshard(model)
        save_training_state(folder / "state", model, optimizer,
                            {"step": step, "data_position": step * B, "seed": seed, "method": method,
                             "hyperparameters": hp.to_dict(), "history": history}, ranks)
        return {"type": "checkpoint", "step": step, "model_dir": str(folder / "model"),
                "state_dir": str(folder / "state"), "metrics": metrics}

    def evaluate(step: int) -> dict:
        prompts = validation_prompts
        n = hp.eval_samples
        # the same seed at every evaluation: checkpoints are compared on common random numbers
        rollouts = rollouts_in_chunks(rollout, [p for p in prompts for _ in range(n)], rollout_cfg,
                                      derive_seed(seed, SEED_EVAL, 0), run.rollout_batch_size)
        rewards = torch.tensor([grader(graded_text(r, grader), validation_examples[i // n])
                                for i, r in enumerate(rollouts)])
        correct = (rewards >= 1.0).view(len(prompts), n).sum(dim=1).tolist()
        return {"type": "eval", "step": step, "reward_mean": float(rewards.mean()),
                "pass_at_1": mean(c / n for c in correct), f"pass_at_{n}": mean(pass_at_k(n, c, n) for c in correct),
                "n_prompts": len(prompts), "samples_per_prompt": n,
                "thinking_length": mean(r.n_thinking for r in rollouts)}

    yield {"type": "start", "method": method, "seed": seed, "hyperparameters": hp.to_dict(), "job_id": job_id,
           "n_train": len(train_examples), "n_validation": len(validation_examples or []),
           "trainable_parameters": sum(p.numel() for p in trainable.values()), "resumed_from_step": start_step,
           "onnx_export": run.export_onnx, "device": device, "backend": run.backend,
           "rollout_engine": run.rollout_engine, "cuda_graphs": cuda_graphs, "world_size": ranks.world}
    if validation_examples and start_step == 0 and ranks.is_main:
        rollout_model.eval()
        yield evaluate(0)

    per_minibatch = hp.mini_batch_size * G  # whole prompt groups per mini-batch
    rows = rank_rows(B * G, per_minibatch, ranks)  # all rows in one process; this rank's part of each mini-batch
    for step in range(start_step, hp.n_steps):
        t_start = time.perf_counter()
        # ---- rollouts: G per prompt; the global rollout index is the Philox `sample` coordinate -----------------
        rollout_model.eval()
        indices = prompt_indices(len(train_examples), seed, step * B, B)
        prompts = [prompt_tokens[i] for i in indices for _ in range(G)]
        rollouts = rollouts_in_chunks(rollout, [prompts[j] for j in rows], rollout_cfg,
                                      derive_seed(seed, SEED_ROLLOUT, step), run.rollout_batch_size, samples=rows)
        t_rollout = time.perf_counter() - t_start
        local_rewards = [grader(graded_text(r, grader), train_examples[indices[j // G]])
                         for j, r in zip(rows, rollouts)]
        rewards = torch.zeros(B * G)  # every rank's rewards, in the 1-rank order: advantages over whole groups
        for part_rows, part in all_gather_objects((rows, local_rewards), ranks):
            rewards[part_rows] = torch.tensor(part)
        advantages = group_advantages(rewards.view(B, G)).flatten()

        # ---- old and reference log-probs on the exact tensors the updates will use ------------------------------
        minibatches = []  # [mini-batch][micro-batch] -> (batch, old_logp, ref_logp)
        local = list(range(len(rows)))  # positions in `rollouts`; rows[position] is the global row
        with torch.no_grad():
            for group in chunks(local, per_minibatch // ranks.world):
                micro = []
                for part in chunks(group, run.micro_batch_size):
                    batch = build_batch([rollouts[j] for j in part], advantages[[rows[j] for j in part]], device)
                    with autocast():
                        old = sequence_logprobs(model, batch, hp.loss, backend=run.backend)[0]
                    ref = None
                    if hp.kl_beta > 0:
                        with peft_model.disable_adapter() if peft_model is not None else nullcontext():
                            with autocast():
                                ref = sequence_logprobs(reference or model, batch, hp.loss, backend=run.backend)[0]
                    micro.append((batch, old, ref))
                minibatches.append(micro)
        if reference is not None:
            reshard(reference)

        # ---- PPO updates: one optimizer step per mini-batch, token-mean over the whole mini-batch ---------------
        model.train()
        stats: dict[str, list[float]] = {}
        ratios = []
        for _ in range(hp.ppo_epochs):
            for micro in minibatches:
                optimizer.zero_grad(set_to_none=True)
                n_tokens = sum_across(float(sum(batch.loss_mask.sum() for batch, _, _ in micro)), ranks, device)
                for batch, old, ref in micro:
                    with autocast():
                        logp, entropy = sequence_logprobs(model, batch, hp.loss, with_entropy=hp.entropy_coef > 0,
                                                          backend=run.backend)
                    loss, parts = grpo_objective(logp, old, ref, batch.advantages, batch.loss_mask, hp.clip_eps,
                                                 hp.dual_clip, hp.kl_beta, n_tokens)
                    if hp.entropy_coef > 0:
                        loss = loss - hp.entropy_coef * masked_token_mean(entropy, batch.loss_mask, n_tokens)
                    (loss * ranks.world).backward()  # FSDP2 averages gradients over ranks; the shares add up
                    kept = batch.loss_mask.bool()
                    ratios.append(torch.exp(logp.detach() - old)[kept].cpu())
                    for name, value in parts.items():
                        stats.setdefault(name, []).append(float(value))
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable.values(), hp.grad_clip)
                stats.setdefault("grad_norm", []).append(float(full_tensor(grad_norm)))
                optimizer.step()
        if ranks.distributed:
            sync_rollout_model(model, rollout_model)
        t_total = time.perf_counter() - t_start

        # ---- metrics of the whole batch, the same on every rank -------------------------------------------------
        gap_valid = hp.loss == "soft_grpo" or method == "grpo"  # the rollout stored the masked-mean variant
        gaps = torch.cat([(old - batch.rollout_logprob).abs().cpu() for micro in minibatches
                          for batch, old, _ in micro])
        shares = {name: sum(values) for name, values in stats.items() if name != "grad_norm"}
        parts = all_gather_objects((rows, rollouts, shares, torch.cat(ratios), ratios[0], gaps), ranks)
        every = [None] * (B * G)
        for part_rows, part_rollouts, *_ in parts:
            for j, r in zip(part_rows, part_rollouts):
                every[j] = r
        ratio = torch.cat([p[3] for p in parts])
        first_ratio = torch.cat([p[4] for p in parts])
        metrics = {
            "step": step + 1,
            **rollout_summary(every, rewards),
            # pg_loss / kl / clip fractions are sums of per-micro-batch token-mean shares: sum them per mini-batch
            **{name: sum(p[2][name] for p in parts) / (len(minibatches) * hp.ppo_epochs) for name in shares},
            "grad_norm": mean(stats["grad_norm"]),
            "ratio_mean": float(ratio.mean()), "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
            # exactly 0 unless old log-probs and the first update's forward disagree (a recompute bug)
            "ratio_first_update_max_deviation": float((first_ratio - 1).abs().max()),
            # rollout (KV cache, step by step) vs training forward (whole sequence): numerics gap, SOFT_GRPO.md s.5
            "rollout_logprob_gap": float(torch.cat([p[5] for p in parts]).mean()) if gap_valid else None,
            "tokens_per_s": sum(len(r.tokens) for r in every) / max(t_rollout, 1e-9),
            # the step's training tokens (prompt + sampled, every rollout, once however many ppo_epochs): the API sums
            # them into the job's trained_tokens
            "step_tokens": sum(len(r.prompt_ids) + len(r.tokens) for r in every),
            "rollout_seconds": t_rollout, "step_seconds": t_total, "learning_rate": hp.learning_rate,
        }
        history.append(metrics)
        command = yield {"type": "metrics", **metrics}

        step_done = step + 1
        if validation_examples and (step_done % hp.eval_interval == 0 or step_done == hp.n_steps) and ranks.is_main:
            rollout_model.eval()
            command = (yield evaluate(step_done)) or command
        command = broadcast_from_main(command, ranks)  # rank 0's driver decides for every rank
        if step_done % hp.checkpoint_interval == 0 or step_done == hp.n_steps or command == "stop":
            yield save_checkpoint(step_done, {k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        if command == "stop":
            yield {"type": "stopped", "step": step_done}
            return
    yield {"type": "done", "step": hp.n_steps, "history": history}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
