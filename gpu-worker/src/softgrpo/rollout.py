"""Batched soft-thinking and discrete generation with a KV cache (SOFT_GRPO.md section 1, docs/CONTRACTS.md).

Soft mode: while a row is thinking, every step is a soft step (the next input is the Gumbel-softmax mixture of k
token embeddings; the emitted Gumbel-max token is what the text shows). Thinking ends when

    - the emitted token is `</think>`: the step is stored and fed as the discrete token `</think>` (as the reference
      sampler does: it one-hots the ids when thinking ends), scored with log_softmax[</think>];
    - the thinking-step cap is reached: `</think>` is forced and fed as a discrete step;
    - cold stop (optional): the entropy of the filtered p stayed below a threshold for L consecutive steps: `</think>`
      is forced the same way.
Forced steps are stored with forced=True: they are not policy samples, so training leaves them out of the loss.
Then the answer phase samples discrete tokens with its own settings until eos or max_response_tokens.
Discrete mode (the GRPO baseline): every step is an answer-phase step (the cap still closes a runaway thinking).
Gaussian mode (soft_gaussian, Butt et al. 2025): thinking steps feed x = sum_i q_i E[ids_i] + sigma * eps over the
kept top-k slots (eps ~ N(0, I) from Philox streams 2/3, sigma = embedding_noise * RMS of the embedding rows); the
emitted text token is the same Gumbel-max sample as in soft mode.

Every step stores its slot flags (kept: the slot survived the filters; edge: its noise sits on a clamp bound) and the
weights it fed forward, so training rebuilds the input and scores the step exactly as it was generated.

Rows in different phases share one batched forward per step. Randomness is Philox keyed by (seed, sample = the
row's rollout index, step = generated position), so a row's output does not depend on its batch neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from softgrpo.loss import kept_log_q, policy_logprob
from softgrpo.philox import normals
from softgrpo.sampler import SoftStepConfig, discrete_step, entropy_of, filtered_probs, soft_token_step


@dataclass(frozen=True)
class RolloutConfig:
    mode: str = "soft"  # "soft" | "discrete" | "gaussian"
    thinking: SoftStepConfig = SoftStepConfig()
    answer_temperature: float = 1.0  # 0 = greedy (argmax; log-prob and entropy of such steps are 0)
    answer_top_k: int = 5
    answer_top_p: float = 0.95
    answer_min_p: float = 0.0
    max_response_tokens: int = 8192
    max_thinking_tokens: int = 8192
    cold_stop_entropy: float | None = None
    cold_stop_steps: int = 256
    embedding_noise: float = 0.0  # gaussian mode: sigma as a multiple of the RMS of the embedding rows


@dataclass
class Rollout:
    """One generated response. T = number of generated steps, k = max_topk."""
    prompt_ids: list[int]
    ids: torch.Tensor  # [T, k] int64: soft candidates, or [tok, 0, ...] for discrete steps
    gp: torch.Tensor  # [T, k] float32: perturbed log-probs, zeros for discrete steps
    is_soft: torch.Tensor  # [T] bool
    tokens: torch.Tensor  # [T] int64: emitted / sampled / forced token (the text)
    forced: torch.Tensor  # [T] bool: `</think>` forced by the cap or cold stop (not a policy sample)
    temperature: torch.Tensor  # [T] float32: the sampling temperature of the step (thinking or answer; 0 = greedy)
    logprob: torch.Tensor  # [T] float32: policy log-prob (masked-mean variant) from the rollout's own logits (greedy: 0)
    entropy: torch.Tensor  # [T] float32: entropy of the filtered p the step sampled from (greedy: 0)
    kept: torch.Tensor  # [T, k] bool: slots the filters kept ([True, False, ...] for discrete steps)
    edge: torch.Tensor  # [T, k] int8: +1 / -1 where the slot's Gumbel noise was clamped to 3 / -1.5
    weights: torch.Tensor  # [T, k] float32: the mixture weights fed forward (one-hot for discrete steps)
    n_thinking: int  # steps taken while thinking, the closing `</think>` included
    thinking_end: str | None  # "emitted" | "cap" | "cold_stop" | None (never closed)
    finish_reason: str  # "stop" (eos) | "length"
    thinking_text: str = ""
    answer_text: str = ""
    offset: torch.Tensor | None = None  # [T, d] float32: gaussian mode's input noise sigma * eps (zeros elsewhere)
    noise_std: float = 0.0  # gaussian mode: sigma

    @property
    def n_answer(self) -> int:
        return int(self.tokens.shape[0]) - self.n_thinking


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids [B, P] int64 left-padded with pad_id, attention_mask [B, P] int64)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
    return ids, mask


def one_hot_slots(tokens: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Discrete model input: ids [..., k] = [tok, 0, ...], weights [..., k] = [1, 0, ...]."""
    ids = torch.zeros(*tokens.shape, k, dtype=torch.long, device=tokens.device)
    ids[..., 0] = tokens
    weights = torch.zeros(*tokens.shape, k, dtype=torch.float32, device=tokens.device)
    weights[..., 0] = 1.0
    return ids, weights


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], cfg: RolloutConfig, seed: int,
             samples: list[int] | torch.Tensor | None = None, on_step=None) -> list[Rollout]:
    """Generate one response per prompt.

    model: SoftTokenLM; tokenizer: has think_end_id, eos_id, pad_id and decode(ids); prompts: B token lists ending
    with `<think>\\n`; samples: [B] rollout indices for Philox (default 0..B-1). Returns B Rollouts.
    on_step(tokens [B] list[int], thinking [B] list[bool], active [B] list[bool]) -> bool, when given, sees each
    step's emitted tokens as they are decided (serve streams them); returning True stops decoding, and the rows
    still running end with finish_reason "cancelled".
    """
    if cfg.mode not in ("soft", "discrete", "gaussian"):
        raise ValueError(f"mode must be 'soft', 'discrete' or 'gaussian', got {cfg.mode!r}")
    device = next(model.parameters()).device
    B, k = len(prompts), cfg.thinking.max_topk
    samples = torch.arange(B) if samples is None else torch.as_tensor(samples, dtype=torch.long)
    samples = samples.to(device)
    think_end, eos = tokenizer.think_end_id, tokenizer.eos_id
    soft_mode = cfg.mode in ("soft", "gaussian")
    gaussian = cfg.mode == "gaussian"
    sigma, dims = 0.0, None
    if gaussian:
        embedding = model.model.embed_tokens.weight
        sigma = float(cfg.embedding_noise * embedding.float().pow(2).mean().sqrt())
        dims = torch.arange(embedding.shape[1], device=device)

    prompt_ids, mask = left_pad(prompts, tokenizer.pad_id)
    prompt_ids, mask = prompt_ids.to(device), mask.to(device)
    ids, weights = one_hot_slots(prompt_ids, k)
    out = model(ids, weights, attention_mask=mask, use_cache=True)
    logits, past = out.logits[:, -1].float(), out.past_key_values

    thinking = torch.ones(B, dtype=torch.bool, device=device)  # the prompt opened <think>
    done = torch.zeros(B, dtype=torch.bool, device=device)
    n_thinking = torch.zeros(B, dtype=torch.long, device=device)
    low_entropy_run = torch.zeros(B, dtype=torch.long, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    end_reason = [None] * B
    finish = ["length"] * B
    steps = []  # per step: dict of [B, ...] tensors
    thinking_temp, answer_temp = cfg.thinking.temperature, cfg.answer_temperature
    for t in range(cfg.max_response_tokens):
        step_index = torch.full((B,), t, dtype=torch.long, device=device)
        sampled = discrete_step(logits, answer_temp, cfg.answer_top_k, cfg.answer_top_p, cfg.answer_min_p, seed,
                                samples, step_index)
        if soft_mode:
            soft = soft_token_step(logits, cfg.thinking, seed, samples, step_index)
            entropy = torch.where(thinking, soft.entropy, answer_entropy(logits, cfg))
            low = thinking & (cfg.cold_stop_entropy is not None) & (soft.entropy < (cfg.cold_stop_entropy or 0.0))
            low_entropy_run = torch.where(low, low_entropy_run + 1, torch.zeros_like(low_entropy_run))
            cold = low_entropy_run >= cfg.cold_stop_steps
            token = torch.where(thinking, soft.emitted, sampled)
        else:
            entropy = answer_entropy(logits, cfg)
            cold = torch.zeros_like(thinking)
            token = sampled
        cap = thinking & (n_thinking >= cfg.max_thinking_tokens)
        forced = thinking & (cap | cold)
        token = torch.where(forced, torch.full_like(token, think_end), token)
        is_soft = thinking & ~forced & (token != think_end) if soft_mode else torch.zeros_like(thinking)

        step_ids, step_weights = one_hot_slots(token, k)
        step_gp = torch.zeros(B, k, device=device)
        step_kept, step_edge = step_weights > 0, torch.zeros(B, k, dtype=torch.int8, device=device)
        offset = None
        if soft_mode:
            fed = soft.weights
            if gaussian:  # feed q itself (no Gumbel-softmax) plus Gaussian noise on the embedding
                fed = kept_log_q((logits / thinking_temp).gather(-1, soft.ids), soft.kept).exp()
                eps = normals(seed, samples.view(-1, 1), step_index.view(-1, 1), dims.view(1, -1))
                offset = torch.where(is_soft[:, None], sigma * eps, torch.zeros_like(eps))
            step_ids = torch.where(is_soft[:, None], soft.ids, step_ids)
            step_weights = torch.where(is_soft[:, None], fed, step_weights)
            step_gp = torch.where(is_soft[:, None], soft.gp, step_gp)
            step_kept = torch.where(is_soft[:, None], soft.kept, step_kept)
            step_edge = torch.where(is_soft[:, None], soft.edge, step_edge)
        sampled_by_thinking = thinking if soft_mode else torch.zeros_like(thinking)
        temperature = torch.where(sampled_by_thinking, thinking_temp, answer_temp).float()
        logprob = step_logprob(logits, step_ids, step_gp, token, is_soft, temperature, step_kept, step_edge)
        steps.append({"ids": step_ids, "gp": step_gp, "is_soft": is_soft, "tokens": token, "forced": forced,
                      "temperature": temperature, "logprob": logprob, "entropy": entropy, "kept": step_kept,
                      "edge": step_edge, "weights": step_weights})
        if gaussian:
            steps[-1]["offset"] = offset

        active, thinking_before = ~done, thinking
        for row in torch.nonzero(active & thinking & (token == think_end)).flatten().tolist():
            end_reason[row] = "cap" if bool(cap[row]) else "cold_stop" if bool(cold[row]) else "emitted"
        n_thinking = n_thinking + (active & thinking).long()
        thinking = thinking & ~(token == think_end)
        lengths = lengths + active.long()
        for row in torch.nonzero(active & (token == eos)).flatten().tolist():
            finish[row] = "stop"
        done = done | (token == eos) | (lengths >= cfg.max_response_tokens)
        if on_step is not None and on_step(token.tolist(), thinking_before.tolist(), active.tolist()):
            for row in torch.nonzero(~done).flatten().tolist():
                finish[row] = "cancelled"
            break
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=device)], dim=1)
        out = model(step_ids[:, None], step_weights[:, None], attention_mask=mask, past_key_values=past,
                    use_cache=True, input_offset=None if offset is None else offset[:, None])
        logits, past = out.logits[:, -1].float(), out.past_key_values

    stacked = {name: torch.stack([s[name] for s in steps], dim=1).cpu() for name in steps[0]}
    rollouts = []
    for row in range(B):
        length, n_think = int(lengths[row]), int(n_thinking[row])
        fields = {name: value[row, :length] for name, value in stacked.items()}
        tokens = fields["tokens"].tolist()
        rollouts.append(Rollout(
            prompt_ids=list(prompts[row]), n_thinking=n_think, thinking_end=end_reason[row],
            finish_reason=finish[row],
            thinking_text=tokenizer.decode([tok for tok in tokens[:n_think] if tok != think_end]),
            answer_text=tokenizer.decode([tok for tok in tokens[n_think:] if tok != eos]), noise_std=sigma, **fields))
    return rollouts


def step_logprob(logits: torch.Tensor, ids: torch.Tensor, gp: torch.Tensor, tokens: torch.Tensor,
                 is_soft: torch.Tensor, temperature: torch.Tensor, kept: torch.Tensor | None = None,
                 edge: torch.Tensor | None = None) -> torch.Tensor:
    """Policy log-prob [B] (masked-mean variant) of one step from its logits [B, V] at per-row temperature [B].

    A greedy step (temperature 0, answer phase only) took the argmax: its policy is a point mass, so its log-prob is
    log 1 = 0 (dividing the logits by 0 would give NaN)."""
    greedy = temperature == 0
    safe = torch.where(greedy, torch.ones_like(temperature), temperature)
    logprob = policy_logprob(logits / safe[:, None], ids, gp, tokens, is_soft, 1.0, "mean", kept, edge)
    return torch.where(greedy, torch.zeros_like(logprob), logprob)


def answer_entropy(logits: torch.Tensor, cfg: RolloutConfig) -> torch.Tensor:
    """Entropy [B] of the answer-phase filtered p. Greedy answers (temperature 0) sample from a point mass at the
    argmax, so their entropy is 0 (not the entropy of the unfiltered softmax: that is not what the step drew from)."""
    if cfg.answer_temperature == 0:
        return torch.zeros(logits.shape[0], dtype=torch.float32, device=logits.device)
    return entropy_of(filtered_probs(logits, cfg.answer_temperature, cfg.answer_top_k, cfg.answer_top_p,
                                     cfg.answer_min_p))
