"""The one rollout interface: an engine made by kind and backend, used by train, serve and the recipes alike.

    engine = make_rollout_engine("plain" | "static", "torch" | "triton", model, tokenizer, max_prompt_len)
    rollouts = engine(prompts, cfg, seed, samples)            # -> list[Rollout], one per prompt
    rollouts = rollouts_in_chunks(engine, prompts, cfg, seed, chunk_size)

kind "plain":  softgrpo.rollout.generate, the reference (growing KV cache, one Python step per token); every mode
     "static": softgrpo.gpu_engine (static KV cache; the decode step in CUDA graphs on CUDA with the triton backend,
               eager elsewhere); engines are kept per (rollout config, batch size, prompt width bucket), the least
               recently used dropped beyond `keep`. They share the model's parameters, so they always roll out the
               current policy.
Philox coordinates are (seed, samples[i], step): the output of a row depends on neither its batch neighbours nor the
chunking, so every engine and chunk size gives the same samples for the same seed.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from softgrpo.rollout import Rollout, RolloutConfig, generate

RolloutEngine = Callable[[list, RolloutConfig, int, list], list[Rollout]]
ENGINE_KINDS = ("plain", "static")


def make_rollout_engine(kind: str, backend: str, model, tokenizer, max_prompt_len: int, keep: int = 4,
                        prompt_bucket: int | None = None) -> RolloutEngine:
    """(prompts, cfg, seed, samples) -> list[Rollout] through the chosen engine. max_prompt_len sizes the static
    engine's cache (prompt_bucket: round each call's widest prompt up to a multiple instead, for serving)."""
    if kind == "plain":
        return lambda prompts, cfg, seed, samples: generate(model, tokenizer, prompts, cfg, seed, samples)
    if kind != "static":
        raise ValueError(f"rollout engine must be one of {', '.join(ENGINE_KINDS)}, got {kind!r}")
    from softgrpo import gpu_engine

    engines: OrderedDict = OrderedDict()

    def static_generate(prompts, cfg, seed, samples, on_step=None):
        width = max_prompt_len
        if prompt_bucket:
            width = -(-max(len(p) for p in prompts) // prompt_bucket) * prompt_bucket
        key = (cfg, len(prompts), width)
        engine = engines.pop(key, None)
        if engine is None:
            engine = gpu_engine.GpuRolloutEngine(model, tokenizer, cfg, len(prompts), width, backend=backend)
        engines[key] = engine  # most recently used last
        while len(engines) > keep:
            engines.popitem(last=False)
        return engine.generate(prompts, seed, samples, on_step=on_step)
    static_generate.engines = engines  # for tests and memory accounting
    return static_generate


def rollouts_in_chunks(engine: RolloutEngine, prompts: list[list[int]], cfg: RolloutConfig, seed: int,
                       chunk_size: int | None, samples: list[int] | None = None) -> list[Rollout]:
    """engine() over chunks of rows; sample indices stay global, so chunking does not change the output.
    samples: the rows' Philox sample indices (default 0..len-1); a rank of a distributed run passes the global
    indices of its rows, so it samples exactly what a single process samples for them."""
    size = chunk_size or len(prompts)
    samples = list(range(len(prompts))) if samples is None else list(samples)
    rollouts = []
    for start in range(0, len(prompts), size):
        part = prompts[start:start + size]
        rollouts += engine(part, cfg, seed, samples[start:start + len(part)])
    return rollouts
