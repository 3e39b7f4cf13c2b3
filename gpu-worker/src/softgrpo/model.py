"""Qwen2 / Llama decoder with soft-token input and a key-value cache.

The input of every position is a mixture of k token embeddings (docs/CONTRACTS.md, "PyTorch model API"):

    ids:     [B, T, k] int64      token ids of the k slots
    weights: [B, T, k] float      mixture weights; embedding = sum_i weights_i * E[ids_i]

A discrete token is ids [tok, 0, ...], weights [1, 0, ...]. Parameter names equal the Hugging Face key names
(`model.layers.0.self_attn.q_proj.weight`, ...), so `model.safetensors` loads in `transformers` unchanged.
The forward has no Python control flow on tensor values, so it exports to ONNX with dynamic B, T, k and past P.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from safetensors.torch import load_file, save_file

SUPPORTED_MODEL_TYPES = ("qwen2", "llama")
REQUIRED_CONFIG_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


class ModelFolderError(ValueError):
    """A model folder or its config.json cannot be used; the message names the problem."""


@dataclass
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None  # None = default RoPE; {"rope_type": "llama3", ...} supported
    qkv_bias: bool  # Qwen2: always True; Llama: attention_bias
    o_bias: bool  # Llama attention_bias only
    mlp_bias: bool
    tie_word_embeddings: bool
    max_position_embeddings: int
    initializer_range: float

    @classmethod
    def from_dict(cls, cfg: dict) -> "ModelConfig":
        """Read a Hugging Face config.json dict (transformers 4.x or 5.x layout); raise ModelFolderError if unusable."""
        model_type = cfg.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelFolderError(f"config.json: model_type {model_type!r} is not supported (expected one of {SUPPORTED_MODEL_TYPES})")
        missing = [f for f in REQUIRED_CONFIG_FIELDS if f not in cfg]
        if missing:
            raise ModelFolderError(f"config.json: missing required field(s) {', '.join(missing)}")
        if cfg.get("use_sliding_window"):
            raise ModelFolderError("config.json: use_sliding_window=true is not supported")
        n_heads = cfg["num_attention_heads"]
        n_kv = cfg.get("num_key_value_heads") or n_heads
        if n_heads % n_kv:
            raise ModelFolderError(f"config.json: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
        # transformers 5 moves rope_theta / rope_scaling into rope_parameters
        rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
        rope_theta = rope.pop("rope_theta", None) or cfg.get("rope_theta", 10000.0)
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise ModelFolderError(f"config.json: rope_type {rope_type!r} is not supported (default, llama3)")
        is_llama = model_type == "llama"
        attention_bias = bool(cfg.get("attention_bias", False))
        return cls(
            model_type=model_type,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=n_heads,
            num_key_value_heads=n_kv,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // n_heads,
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope_theta),
            rope_scaling=rope if rope_type == "llama3" else None,
            qkv_bias=attention_bias if is_llama else True,
            o_bias=attention_bias if is_llama else False,
            mlp_bias=bool(cfg.get("mlp_bias", False)) if is_llama else False,
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            max_position_embeddings=cfg.get("max_position_embeddings", 32768),
            initializer_range=cfg.get("initializer_range", 0.02),
        )


@dataclass
class ModelOutput:
    logits: torch.Tensor | None  # [B, T, V]
    past_key_values: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer (key, value) [B, n_kv, P+T, hd]
    hidden: torch.Tensor | None = None  # [B, T, d] after the final norm


def rope_inv_freq(cfg: ModelConfig) -> torch.Tensor:
    """Inverse frequencies [hd/2] of rotary embeddings, with Llama 3 frequency scaling when configured."""
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim))
    if cfg.rope_scaling is None:
        return inv_freq.float()
    s = cfg.rope_scaling
    factor, low, high = s["factor"], s.get("low_freq_factor", 1.0), s.get("high_freq_factor", 4.0)
    old_len = s["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    mid = (1 - smooth) * scaled / factor + smooth * scaled
    is_mid = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(is_mid, mid, scaled).float()


def rotary_cos_sin(position_ids: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype):
    """cos, sin [B, 1, T, hd] of the rotary embedding at position_ids [B, T]."""
    freqs = position_ids[:, :, None].float() * inv_freq[None, None, :]  # [B, T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # [B, 1, T, hd]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        d = cfg.hidden_size
        self.q_proj = nn.Linear(d, self.n_heads * self.hd, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(d, self.n_kv * self.hd, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(d, self.n_kv * self.hd, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * self.hd, d, bias=cfg.o_bias)

    def project(self, x, cos, sin):
        """x [B,T,d]; cos/sin [B,1,T,hd] -> q [B,H,T,hd], k, v [B,n_kv,T,hd] of these T positions (q, k rotated)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        return q, k, v

    def forward(self, x, cos, sin, mask, past):
        """x [B,T,d]; cos/sin [B,1,T,hd]; mask [B,1,T,P+T] additive (None: plain causal, no past, no padding);
        past (k, v) [B,n_kv,P,hd] or None. Returns ([B,T,d], (k, v) [B,n_kv,P+T,hd])."""
        B, T, _ = x.shape
        q, k, v = self.project(x, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        # grouped-query attention: query heads j*g .. j*g+g-1 share kv head j (as transformers' repeat_kv)
        g = self.n_heads // self.n_kv
        if g > 1:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        # SDPA: flash / memory-efficient kernels on GPU, so long training sequences never materialise [T, S] scores
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)  # [B, H, T, hd]
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.hd)
        return self.o_proj(out), present


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, h = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(d, h, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(d, h, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(h, d, bias=cfg.mlp_bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask, past):
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + h
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present


class Backbone(nn.Module):
    """Holds the `model.*` parameters under their Hugging Face names."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def attention_bias(attention_mask: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [B, 1, T, S] for the last T queries of a left-padded mask [B, S = P + T].

    Key j is visible to query i when it is not padding and j <= P + i. Hidden keys get the dtype's finite minimum,
    not -inf, so fully hidden rows (queries at padding positions) stay finite instead of NaN.
    """
    S = attention_mask.shape[1]
    key_pos = torch.arange(S, device=attention_mask.device)
    query_pos = torch.arange(T, device=attention_mask.device) + (S - T)
    visible = (key_pos[None, :] <= query_pos[:, None])[None] & attention_mask[:, None, :].bool()  # [B, T, S]
    return torch.where(visible, 0.0, torch.finfo(dtype).min).to(dtype)[:, None]


def position_ids_from_mask(attention_mask: torch.Tensor, T: int) -> torch.Tensor:
    """Positions [B, T] of the last T columns of a left-padded mask [B, P+T]: cumsum(mask) - 1, clipped at 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]


class SoftTokenLM(nn.Module):
    gradient_checkpointing = False  # training forwards recompute each decoder layer in backward (RunConfig option)

    def __init__(self, config: dict):
        super().__init__()
        self.config_dict = dict(config)
        self.cfg = ModelConfig.from_dict(config)
        self.model = Backbone(self.cfg)
        self.lm_head = nn.Linear(self.cfg.hidden_size, self.cfg.vocab_size, bias=False)
        if self.cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.register_buffer("inv_freq", rope_inv_freq(self.cfg), persistent=False)

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict, seed: int | None = None) -> "SoftTokenLM":
        """Random initialisation as in transformers: normal(0, initializer_range) weights, zero biases, unit norms."""
        if seed is not None:
            torch.manual_seed(seed)
        model = cls(config)
        std = model.cfg.initializer_range
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        return model

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32, device="cpu") -> "SoftTokenLM":
        """Load config.json and *.safetensors (Hugging Face key names, sharded or not) from a model folder."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFolderError(f"model folder {str(folder)!r} does not exist")
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise ModelFolderError(f"model folder {str(folder)!r} has no config.json")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise ModelFolderError(f"{config_path}: invalid JSON ({e})") from e
        with torch.device("meta"):
            model = cls(config)  # validates config.json before touching the weights
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ModelFolderError(f"model folder {str(folder)!r} has no *.safetensors weights")
        state = {}
        for f in files:
            state.update(load_file(f, device=str(device)))
        state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
        if model.cfg.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if model.cfg.tie_word_embeddings:
            missing = [k for k in missing if k != "lm_head.weight"]
            model.lm_head.weight = model.model.embed_tokens.weight
        if missing or unexpected:
            raise ModelFolderError(
                f"{folder}: weights do not match config.json (missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        model.inv_freq = rope_inv_freq(model.cfg).to(device)
        return model.to(dtype=dtype).eval()

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json and model.safetensors (tied lm_head omitted, as transformers does)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.cfg.tie_word_embeddings:
            state.pop("lm_head.weight")
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(self.config_dict, indent=2, sort_keys=True) + "\n")

    # ---- forward ------------------------------------------------------------------------------------------------
    @property
    def lm_head_weight(self) -> torch.Tensor:
        """[V, d] output projection (the input embedding when tied)."""
        return self.lm_head.weight

    def embed(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """ids [B,T,k] int64, weights [B,T,k] -> [B,T,d] = sum_i weights_i * E[ids_i]."""
        e = self.model.embed_tokens(ids)  # [B, T, k, d]
        return torch.einsum("btk,btkd->btd", weights.to(e.dtype), e)

    def forward(
        self,
        ids: torch.Tensor,
        weights: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        use_cache: bool = False,
        return_hidden: bool = False,
        return_logits: bool = True,
        input_offset: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Soft-token forward.

        ids [B,T,k] int64 with weights [B,T,k] (or ids [B,T] and weights None: discrete tokens);
        attention_mask [B, P+T] (1 attend, 0 left padding; default all ones); position_ids [B,T] (default
        cumsum(mask)-1); past_key_values: per layer (key, value) [B, n_kv, P, hd].
        Returns logits [B,T,V] (None if return_logits=False), the cache [B, n_kv, P+T, hd] if use_cache,
        and the final-norm hidden states [B,T,d] if return_hidden. input_offset [B,T,d] (optional) is added to the
        embedded input (the Gaussian noise of soft_gaussian rollouts).
        """
        if weights is None:
            if ids.dim() != 2:
                raise ValueError("ids without weights must be discrete token ids [B, T]")
            ids = ids.unsqueeze(-1)
            weights = torch.ones(ids.shape, dtype=self.model.embed_tokens.weight.dtype, device=ids.device)
        B, T, _ = ids.shape
        x = self.embed(ids, weights)
        if input_offset is not None:
            x = x + input_offset.to(x.dtype)
        P = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        plain_causal = attention_mask is None and past_key_values is None  # lets SDPA take its is_causal fast path
        if attention_mask is None:
            attention_mask = torch.ones(B, P + T, dtype=torch.long, device=ids.device)
        if position_ids is None:
            position_ids = position_ids_from_mask(attention_mask, T)

        cos, sin = rotary_cos_sin(position_ids, self.inv_freq, x.dtype)
        mask = None if plain_causal else attention_bias(attention_mask, T, x.dtype)

        presents = []
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, layer in enumerate(self.model.layers):
            past = None if past_key_values is None else past_key_values[i]
            if recompute:  # keep each layer's input only; its activations are recomputed in the backward pass
                x, present = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, past, use_reentrant=False)
            else:
                x, present = layer(x, cos, sin, mask, past)
            presents.append(present)
        hidden = self.model.norm(x)
        logits = self.lm_head(hidden) if return_logits else None
        return ModelOutput(
            logits=logits,
            past_key_values=presents if use_cache else None,
            hidden=hidden if return_hidden else None,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())
