"""Fast soft-thinking rollout engine: static KV cache, whole decode step in one CUDA graph, kernel 1 in the loop.

    rollouts = generate(model, tokenizer, prompts, cfg, seed, backend="triton", dtype=torch.bfloat16)

Same arguments and the same `list[Rollout]` as `softgrpo.rollout.generate` (the plain PyTorch path, which stays the
reference): the per-step rules (soft / discrete phases, `</think>` by emission, cap or cold stop, eos, stored ids /
gp / flags / log-probs / entropies) are the reference's, written as tensor operations on preallocated [B, T_max]
buffers so that rows in different phases (thinking / answer / done) share one step with no per-row Python and no
host synchronisation. What differs from the reference, and why:

- `StaticCacheLM` runs the model over a preallocated cache [L, B, n_kv, S_max, hd] (S_max = prompt + max new
  tokens) with the SoftTokenLM's own parameters (shared, not copied). A step attends over the cache columns up to
  the `kv_bucket` (128) holding its own column, under a mask, so all steps of one bucket have the same shapes: the
  step (model + sampling + bookkeeping) is captured in one torch.cuda.CUDAGraph per bucket (lazily, sharing one
  memory pool) and replayed. The host looks at `done` every `sync_every` steps only.
- backend="triton": sampling is kernel 1 (`kernels.soft_token_step.sampling_step`: one read of the logits serves the
  soft step, the discrete step and the answer entropy; the embedding mix comes out of the same kernel).
  backend="torch": the reference sampler functions (CPU CI; not capturable, as they draw Philox on the host).
- Done rows keep computing until the whole batch is done (their outputs past their length are dropped), as in the
  reference, which also steps every row until all are done.
- Log-probs of steps come from the gathered logits and one logsumexp (`loss.policy_logprob_from_gathered`), the same
  formulas as loss.policy_logprob without sorting or materialising a [B, V] log-softmax.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from softgrpo.kernels import check_backend, require_triton
from softgrpo.loss import policy_logprob_from_gathered
from softgrpo.model import SoftTokenLM, rotate_half
from softgrpo.rollout import Rollout, RolloutConfig, answer_entropy, left_pad, one_hot_slots, step_logprob
from softgrpo.sampler import discrete_step, soft_token_step

END_NONE, END_EMITTED, END_CAP, END_COLD = 0, 1, 2, 3
END_NAMES = {END_NONE: None, END_EMITTED: "emitted", END_CAP: "cap", END_COLD: "cold_stop"}


class StaticCacheLM:
    """A SoftTokenLM's decoder over a preallocated KV cache (parameters shared with `model`).

    forward(x [B, T, d] input embeddings, positions [B, T] int64, slots [T] int64 cache columns to write,
            key_mask [B, S_max] bool keys that exist, kv_len: attend over cache columns [0, kv_len) only)
        -> logits [B, V] of the last position.
    """

    def __init__(self, model: SoftTokenLM, batch_size: int, max_len: int, dtype: torch.dtype | None = None):
        cfg = model.cfg
        self.model, self.cfg = model, cfg
        p = next(model.parameters())
        self.device, self.dtype = p.device, dtype or p.dtype
        self.B, self.S = batch_size, max_len
        shape = (cfg.num_hidden_layers, batch_size, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.k_cache = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v_cache = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.inv_freq = model.inv_freq.to(self.device)
        self.key_pos = torch.arange(max_len, device=self.device)

    @property
    def embedding(self) -> torch.Tensor:
        return self.model.model.embed_tokens.weight

    def forward(self, x, positions, slots, key_mask, kv_len: int | None = None):
        cfg = self.cfg
        S = self.S if kv_len is None else kv_len
        key_pos, key_mask = self.key_pos[:S], key_mask[:, :S]
        B, T, _ = x.shape
        nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        freqs = positions[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # [B, 1, T, hd]
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        # key j visible to the query in column slots[i] when it exists and j <= slots[i]; a query may always see
        # itself, so padding queries stay finite (their outputs are never read by real positions)
        causal = key_pos[None, :] <= slots[:, None]  # [T, S]
        visible = (causal[None] & key_mask[:, None, :]) | (key_pos[None, None, :] == slots[None, :, None])
        mask = torch.where(visible, 0.0, torch.finfo(torch.float32).min)[:, None].to(x.dtype)  # [B, 1, T, S]
        for i, layer in enumerate(self.model.model.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(B, T, nh, hd).transpose(1, 2)
            k = attn.k_proj(h).view(B, T, nkv, hd).transpose(1, 2)
            v = attn.v_proj(h).view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            self.k_cache[i].index_copy_(2, slots, k)
            self.v_cache[i].index_copy_(2, slots, v)
            o = self._attention(q, self.k_cache[i][:, :, :S], self.v_cache[i][:, :, :S], mask)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(B, T, nh * hd))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        hidden = self.model.model.norm(x[:, -1])
        return self.model.lm_head(hidden)


    def _attention(self, q, k, v, mask):
        """q [B, nh, T, hd], k/v [B, nkv, S, hd], mask [B, 1, T, S] additive -> [B, nh, T, hd].

        Grouped-query attention as the model writes it: the g = nh / nkv query heads of a group become g*T query
        rows of their kv head, so k/v are read once per kv head and never repeated in memory.
        """
        B, nh, T, hd = q.shape
        nkv = k.shape[1]
        g = nh // nkv
        qg = q.reshape(B, nkv, g * T, hd)
        if q.is_cuda:  # fused attention kernel (memory-efficient backend: takes the additive mask)
            o = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask.repeat(1, 1, g, 1), scale=1.0 / math.sqrt(hd))
            return o.view(B, nh, T, hd)
        # CPU: the model's own formulation (same summation order), so CPU rollouts match softgrpo.rollout closely
        scores = torch.matmul(qg, k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.view(B, nh, T, -1).float() + mask.float()
        probs = torch.softmax(scores, dim=-1).to(v.dtype)
        return torch.matmul(probs.view(B, nkv, g * T, -1), v).view(B, nh, T, hd)


class _State:
    """Every tensor the decode step reads or writes: fixed addresses, so the step can be a CUDA graph."""

    def __init__(self, B, k, T_max, d, V, device, dtype):
        z = dict(device=device)
        self.logits = torch.zeros(B, V, dtype=dtype, **z)
        self.x = torch.zeros(B, 1, d, dtype=dtype, **z)
        self.pos = torch.zeros(B, 1, dtype=torch.long, **z)
        self.slot = torch.zeros(1, dtype=torch.long, **z)  # cache column of the next input
        self.t = torch.zeros(1, dtype=torch.long, **z)  # generated position (Philox step)
        self.key_mask = None
        self.thinking = torch.ones(B, dtype=torch.bool, **z)
        self.done = torch.zeros(B, dtype=torch.bool, **z)
        self.stopped = torch.zeros(B, dtype=torch.bool, **z)
        self.n_thinking = torch.zeros(B, dtype=torch.long, **z)
        self.low_run = torch.zeros(B, dtype=torch.long, **z)
        self.lengths = torch.zeros(B, dtype=torch.long, **z)
        self.end_code = torch.zeros(B, dtype=torch.long, **z)
        self.out = {
            "ids": torch.zeros(B, T_max, k, dtype=torch.long, **z),
            "gp": torch.zeros(B, T_max, k, dtype=torch.float32, **z),
            "is_soft": torch.zeros(B, T_max, dtype=torch.bool, **z),
            "tokens": torch.zeros(B, T_max, dtype=torch.long, **z),
            "forced": torch.zeros(B, T_max, dtype=torch.bool, **z),
            "temperature": torch.zeros(B, T_max, dtype=torch.float32, **z),
            "logprob": torch.zeros(B, T_max, dtype=torch.float32, **z),
            "entropy": torch.zeros(B, T_max, dtype=torch.float32, **z),
            "kept": torch.zeros(B, T_max, k, dtype=torch.bool, **z),
            "edge": torch.zeros(B, T_max, k, dtype=torch.int8, **z),
            "weights": torch.zeros(B, T_max, k, dtype=torch.float32, **z),
        }


class GpuRolloutEngine:
    """Reusable engine for one model, batch size and length budget (buffers and the CUDA graph are kept).

    backend: "torch" (reference sampler, any device) or "triton" (kernel 1; CUDA, or CPU under TRITON_INTERPRET=1).
    use_graph: capture the step in a CUDA graph (default: on when CUDA and backend="triton").
    """

    def __init__(self, model: SoftTokenLM, tokenizer, cfg: RolloutConfig, batch_size: int, max_prompt_len: int,
                 backend: str = "triton", use_graph: bool | None = None, sync_every: int = 16,
                 kv_bucket: int = 128):
        if cfg.mode not in ("soft", "discrete"):
            raise ValueError(f"mode must be 'soft' or 'discrete', got {cfg.mode!r}")
        self.backend = check_backend(backend)
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        if backend == "triton":
            require_triton(self.device)
        self.use_graph = (self.device.type == "cuda" and backend == "triton") if use_graph is None else use_graph
        if self.use_graph and (self.device.type != "cuda" or backend != "triton"):
            raise ValueError("use_graph needs a CUDA device and backend='triton' (the torch sampler syncs the host)")
        self.B, self.P = batch_size, max_prompt_len
        self.T_max = cfg.max_response_tokens
        self.k = cfg.thinking.max_topk
        # columns rounded up to a multiple of 8 so every attention span (and its mask) is 16-byte aligned, as the
        # fused attention kernels want; the extra columns are never written and stay masked
        self.lm = StaticCacheLM(model, batch_size, -(-(max_prompt_len + self.T_max) // 8) * 8, self.dtype)
        mc = model.cfg
        self.st = _State(batch_size, self.k, self.T_max, mc.hidden_size, mc.vocab_size, self.device, self.dtype)
        self.sync_every = sync_every
        # attention spans the cache only up to the bucket holding the current column: one graph per bucket, so a
        # long budget (8k tokens) does not read 8k keys per step from the first step on
        self.kv_bucket = kv_bucket
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.answer = (cfg.answer_temperature, cfg.answer_top_k, cfg.answer_top_p, cfg.answer_min_p)
        self.timing: dict = {}  # decode seconds and steps of the last generate() (benchmarks read it)

    # ---- one decode step, all tensor ops (captured as a graph on CUDA) ------------------------------------------
    def _sample(self, logits, step_index, inv_temperature):
        """-> (SoftStep or None, discrete tokens [B], answer entropy [B], mixed [B, d] or None, lse [B] or None)"""
        cfg, st = self.cfg, self.st
        if self.backend == "torch":
            sampled = discrete_step(logits, *self.answer, self.seed, self.samples, step_index)
            soft = soft_token_step(logits, cfg.thinking, self.seed, self.samples, step_index) \
                if cfg.mode == "soft" else None
            return soft, sampled, answer_entropy(logits, cfg), None, None
        from softgrpo.kernels.soft_token_step import sampling_step
        soft_cfg = cfg.thinking if cfg.mode == "soft" else None
        out = sampling_step(logits, self.keys, self.samples, step_index, soft_cfg, self.answer,
                            self.lm.embedding if soft_cfg is not None else None, answer_entropy=True,
                            inv_temperature=inv_temperature)
        return out.soft, out.tokens, out.answer_entropy, out.soft.mixed if out.soft is not None else None, out.lse

    def _kv_len(self, t: int) -> int:
        """Cache columns step t attends over: its own column P + t, rounded up to the bucket."""
        return min(self.lm.S, -(-(self.P + t + 1) // self.kv_bucket) * self.kv_bucket)

    def _step(self, kv_len: int):
        cfg, st, B, k = self.cfg, self.st, self.B, self.k
        step_index = st.t.expand(B).contiguous()  # kernels index it per row
        thinking = st.thinking
        by_thinking = thinking if cfg.mode == "soft" else torch.zeros_like(thinking)
        temperature = torch.where(by_thinking, cfg.thinking.temperature, cfg.answer_temperature).float()
        # the torch sampler wants float32 logits; kernel 1 reads the model's bf16 logits directly
        logits = st.logits.float() if self.backend == "torch" else st.logits
        # greedy answer rows (temperature 0) sample a point mass: log-prob 0, as rollout.step_logprob defines it
        greedy = temperature == 0
        soft, sampled, ans_ent, mixed, lse = self._sample(
            logits, step_index, 1.0 / torch.where(greedy, torch.ones_like(temperature), temperature))
        think_end, eos = self.tok.think_end_id, self.tok.eos_id
        if soft is not None:
            entropy = torch.where(thinking, soft.entropy, ans_ent)
            if cfg.cold_stop_entropy is not None:
                low = thinking & (soft.entropy < cfg.cold_stop_entropy)
            else:
                low = torch.zeros_like(thinking)
            st.low_run.copy_(torch.where(low, st.low_run + 1, torch.zeros_like(st.low_run)))
            cold = st.low_run >= cfg.cold_stop_steps
            token = torch.where(thinking, soft.emitted, sampled)
        else:
            entropy, cold, token = ans_ent, torch.zeros_like(thinking), sampled
        cap = thinking & (st.n_thinking >= cfg.max_thinking_tokens)
        forced = thinking & (cap | cold)
        token = torch.where(forced, torch.full_like(token, think_end), token)
        is_soft = (thinking & ~forced & (token != think_end)) if soft is not None else torch.zeros_like(thinking)
        step_ids, step_weights = one_hot_slots(token, k)
        step_gp = torch.zeros(B, k, device=self.device)
        step_kept, step_edge = step_weights > 0, torch.zeros(B, k, dtype=torch.int8, device=self.device)
        if soft is not None:
            step_ids = torch.where(is_soft[:, None], soft.ids, step_ids)
            step_weights = torch.where(is_soft[:, None], soft.weights, step_weights)
            step_gp = torch.where(is_soft[:, None], soft.gp, step_gp)
            step_kept = torch.where(is_soft[:, None], soft.kept, step_kept)
            step_edge = torch.where(is_soft[:, None], soft.edge, step_edge)
        if self.backend == "torch":
            logprob = step_logprob(logits, step_ids, step_gp, token, is_soft, temperature, step_kept, step_edge)
        else:  # kernel 1 accumulated logsumexp(z / T) in its pass over the logits; soft rows need only k logits
            safe_t = torch.where(greedy, torch.ones_like(temperature), temperature)
            zg = logits.gather(1, step_ids).float() / safe_t[:, None]
            logprob = torch.where(greedy, torch.zeros_like(temperature),
                                  policy_logprob_from_gathered(zg, lse, step_gp, is_soft, "mean", step_kept,
                                                               step_edge))
        for name, value in (("ids", step_ids), ("gp", step_gp), ("is_soft", is_soft), ("tokens", token),
                            ("forced", forced), ("temperature", temperature), ("logprob", logprob),
                            ("entropy", entropy), ("kept", step_kept), ("edge", step_edge),
                            ("weights", step_weights)):
            st.out[name].index_copy_(1, st.t, value.unsqueeze(1))

        active = ~st.done
        closing = active & thinking & (token == think_end) & (st.end_code == END_NONE)
        code = torch.where(cap, END_CAP, torch.where(cold, END_COLD, END_EMITTED))
        st.end_code.copy_(torch.where(closing, code, st.end_code))
        st.n_thinking.add_((active & thinking).long())
        st.thinking.copy_(thinking & (token != think_end))
        st.lengths.add_(active.long())
        st.stopped.copy_(st.stopped | (active & (token == eos)))
        st.done.copy_(st.done | (token == eos) | (st.lengths >= cfg.max_response_tokens))

        # next input: the kernel's mixture for soft rows, the token's embedding row for discrete rows
        if mixed is not None:
            x = torch.where(is_soft[:, None], mixed.to(self.dtype), self.lm.embedding[token])
        else:
            x = self.model.embed(step_ids[:, None], step_weights[:, None])[:, 0]
        st.x.copy_(x[:, None])
        st.key_mask.index_fill_(1, st.slot, True)
        st.pos.add_(1)
        st.logits.copy_(self.lm.forward(st.x, st.pos, st.slot, st.key_mask, kv_len))
        st.slot.add_(1)
        st.t.add_(1)

    # ---- generation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], seed: int, samples=None, on_step=None) -> list[Rollout]:
        """Same contract as softgrpo.rollout.generate. len(prompts) must equal the engine's batch size.
        on_step (serve's streaming) sees the steps of each `sync_every` window when the host looks at the state
        anyway, so streaming adds no synchronisation; returning True stops decoding (rows still running end
        "cancelled")."""
        B, st = self.B, self.st
        if len(prompts) != B:
            raise ValueError(f"engine built for batch {B}, got {len(prompts)} prompts")
        if max(len(p) for p in prompts) > self.P:
            raise ValueError(f"prompt longer than max_prompt_len={self.P}")
        from softgrpo.kernels.philox_triton import key_tensor
        self.seed = int(seed)
        samples = torch.arange(B) if samples is None else torch.as_tensor(samples, dtype=torch.long)
        new_samples = samples.to(self.device)
        new_keys = key_tensor(self.seed, B, self.device)
        if self.graphs:  # the captured graphs read these addresses: update in place
            self.samples.copy_(new_samples)
            self.keys.copy_(new_keys)
        else:
            self.samples, self.keys = new_samples, new_keys

        # prefill: prompts left-padded to the engine's max_prompt_len so the decode slots are fixed
        ids, mask = left_pad(prompts, self.tok.pad_id)
        pad = self.P - ids.shape[1]
        ids = F.pad(ids, (pad, 0), value=self.tok.pad_id).to(self.device)
        mask = F.pad(mask, (pad, 0), value=0).to(self.device)
        key_mask = torch.zeros(B, self.lm.S, dtype=torch.bool, device=self.device)
        key_mask[:, :self.P] = mask.bool()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        x = self.model.embed(*one_hot_slots(ids, self.k))
        self.lm.k_cache.zero_()
        self.lm.v_cache.zero_()
        logits = self.lm.forward(x.to(self.dtype), positions, torch.arange(self.P, device=self.device), key_mask,
                                 self._kv_len(-1))

        if st.key_mask is None:
            st.key_mask = key_mask.clone()
        st.key_mask.copy_(key_mask)
        st.logits.copy_(logits)
        st.pos.copy_(positions[:, -1:])
        st.slot.fill_(self.P)
        st.t.zero_()
        for name in ("done", "stopped", "n_thinking", "low_run", "lengths", "end_code"):
            getattr(st, name).zero_()
        st.thinking.fill_(True)
        for buf in st.out.values():
            buf.zero_()

        clock = _Clock(self.device)
        steps = streamed = 0
        cancelled = False
        for t in range(self.T_max):
            kv_len = self._kv_len(t)
            if self.use_graph:
                graph = self.graphs.get(kv_len) or self._capture(kv_len)
                graph.replay()
            else:
                self._step(kv_len)
            steps += 1
            if (t + 1) % self.sync_every == 0:
                if on_step is not None:
                    cancelled, streamed = self._stream_steps(streamed, steps, on_step), steps
                    if cancelled:
                        break
                if bool(st.done.all()):
                    break
        if on_step is not None and not cancelled and streamed < steps:
            self._stream_steps(streamed, steps, on_step)
        self.timing = {"decode_s": clock.seconds(), "steps": steps, "batch": B}
        rollouts = self._collect(prompts)
        if cancelled:
            for r, done in zip(rollouts, st.done.tolist()):
                if not done:
                    r.finish_reason = "cancelled"
        return rollouts

    def _stream_steps(self, start: int, end: int, on_step) -> bool:
        """on_step(tokens [B], thinking [B], active [B]) for steps start..end-1 (rollout.generate's hook); a step
        belongs to a row while it is within the row's length, and is a thinking step while within its n_thinking."""
        st = self.st
        tokens = st.out["tokens"][:, start:end].tolist()
        lengths, n_thinking = st.lengths.tolist(), st.n_thinking.tolist()
        for i, t in enumerate(range(start, end)):
            if on_step([row[i] for row in tokens], [t < n for n in n_thinking], [t < n for n in lengths]):
                return True
        return False

    def _capture(self, kv_len: int) -> torch.cuda.CUDAGraph:
        """Capture the step for one cache bucket. Capturing executes nothing; before the first capture, two eager
        steps on a side stream warm up Triton compilation and cuBLAS, and the state they advanced is restored.
        The cache columns they wrote are rewritten by the real steps before any query can see them."""
        st = self.st
        if not self.graphs:
            saved = {n: getattr(st, n).clone() for n in ("logits", "x", "pos", "slot", "t", "key_mask", "thinking",
                                                         "done", "stopped", "n_thinking", "low_run", "lengths",
                                                         "end_code")}
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    self._step(kv_len)
            torch.cuda.current_stream().wait_stream(s)
            for n, v in saved.items():
                getattr(st, n).copy_(v)
            for buf in st.out.values():
                buf.zero_()
        graph = torch.cuda.CUDAGraph()
        # one memory pool for all buckets: the graphs run one after another and keep nothing between replays
        pool = next(iter(self.graphs.values())).pool() if self.graphs else None
        with torch.cuda.graph(graph, pool=pool):
            self._step(kv_len)
        self.graphs[kv_len] = graph
        return graph

    def _collect(self, prompts) -> list[Rollout]:
        st, tok = self.st, self.tok
        lengths, n_thinking = st.lengths.tolist(), st.n_thinking.tolist()
        end_code, stopped = st.end_code.tolist(), st.stopped.tolist()
        out = {n: v.cpu() for n, v in st.out.items()}
        rollouts = []
        for row in range(self.B):
            length, n_think = lengths[row], n_thinking[row]
            fields = {n: v[row, :length].clone() for n, v in out.items()}
            tokens = fields["tokens"].tolist()
            rollouts.append(Rollout(
                prompt_ids=list(prompts[row]), n_thinking=n_think, thinking_end=END_NAMES[end_code[row]],
                finish_reason="stop" if stopped[row] else "length",
                thinking_text=tok.decode([t for t in tokens[:n_think] if t != tok.think_end_id]),
                answer_text=tok.decode([t for t in tokens[n_think:] if t != tok.eos_id]), **fields))
        return rollouts


class _Clock:
    """Wall time of device work since construction (CUDA events on GPU, so no sync is added inside the loop)."""

    def __init__(self, device):
        import time
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()

    def seconds(self) -> float:
        import time
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end) / 1000.0
        return time.perf_counter() - self.t0


def generate(model: SoftTokenLM, tokenizer, prompts: list[list[int]], cfg: RolloutConfig, seed: int,
             samples=None, backend: str = "triton", use_graph: bool | None = None) -> list[Rollout]:
    """One-shot convenience with the signature of softgrpo.rollout.generate (plus backend / use_graph).
    Build a GpuRolloutEngine directly to reuse buffers and the captured graph across batches."""
    engine = GpuRolloutEngine(model, tokenizer, cfg, len(prompts), max(len(p) for p in prompts), backend=backend,
                              use_graph=use_graph)
    return engine.generate(prompts, seed, samples)
