"""GPU benchmark of the SofT-GRPO hot paths (issue 6): parity checks first, then three measurements, table last.

    cd gpu-worker && python bench/bench_gpu.py            # full run, H100: a few minutes
    cd gpu-worker && python bench/bench_gpu.py --quick    # smaller sizes, smoke run on a GPU
    cd gpu-worker && TRITON_INTERPRET=1 .venv/bin/python bench/bench_gpu.py --dry-run --results /tmp/r.md   # CPU

1. Parity (fails loudly, exit 1): kernel 1 vs softgrpo.sampler at V = 151936; kernel 2 forward and backward vs
   softgrpo.loss.policy_logprob on materialised logits (fp32 tight, bf16 within tolerance); the CUDA-graph engine
   vs softgrpo.rollout on a tiny fp32 model (noise off: same tokens).
2. (a) soft-thinking decode tokens/s at the Qwen2.5-1.5B shape (random bf16 weights, vocab 151936, d 1536,
   28 layers, GQA 12/2, intermediate 8960), B = 64, 128-token prompts, 512 new tokens: our engine vs a naive loop
   (transformers Qwen2ForCausalLM forward per step with DynamicCache, the sampler as plain torch ops on the
   device), and vs the bandwidth floor = (weights + live KV cache bytes per step) / measured copy bandwidth.
   (b) kernel 2 forward+backward time and peak memory vs naive (materialised logits + loss.policy_logprob) at
   d 1536, V 151936, N 16384, k 5, for a thinking-heavy mix (75% soft rows) and an all-discrete batch.
   (c) kernel 1 vs the plain torch chain (sampler.filtered_probs + sort + top-k + Gumbel + softmax + mix, noise
   precomputed on the device so the baseline has no host work) at B 64, V 151936.
   (d) with 2 or more GPUs: a training job under torchrun with FSDP2 and NCCL on all of them vs the same job on one
   (bench/bench_distributed.py: same rollouts, parameters within 1e-3, step time ratio). Not measured yet.
Rows are appended to bench/results.md (what, size, baseline, ours, ratio, device, versions, date).
Departures: the naive decode loop's sampler gets its Philox noise precomputed on the device (a stronger baseline
than the reference sampler, which draws it on the host); weights are random (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import datetime
import math
import pathlib
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from softgrpo.kernels import triton_available  # noqa: E402
from softgrpo.loss import policy_logprob  # noqa: E402
from softgrpo.model import SoftTokenLM  # noqa: E402
from softgrpo.philox import gumbel  # noqa: E402
from softgrpo.rollout import RolloutConfig  # noqa: E402
from softgrpo.rollout import generate as plain_generate  # noqa: E402
from softgrpo.sampler import SoftStepConfig, entropy_of, filtered_probs, soft_token_step  # noqa: E402

QWEN_1_5B = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
             "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
             "num_key_value_heads": 2, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
             "rope_theta": 1000000.0, "tie_word_embeddings": True, "initializer_range": 0.02}
TINY = {**QWEN_1_5B, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}


class Failed(Exception):
    pass


def check(ok: bool, what: str, detail: str = ""):
    print(f"  [{'ok' if ok else 'FAIL'}] {what} {detail}", flush=True)
    if not ok:
        raise Failed(f"{what} {detail}")


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def timeit(fn, device, reps=3, warmup=1) -> float:
    """Median seconds of fn(): CUDA events via triton.testing.do_bench on GPU, perf_counter on CPU."""
    if device.type == "cuda":
        import triton.testing
        return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median") / 1000.0
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def copy_bandwidth(device, nbytes) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    x = torch.randn(nbytes // 2, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    return 2 * x.numel() * 2 / timeit(lambda: y.copy_(x), device)


# ---- the plain torch sampler chain (baseline of (a) and (c)) -------------------------------------------------------
def torch_soft_chain(logits, cfg: SoftStepConfig, g, embedding):
    """sampler.soft_token_step without host work: g [B, k] Gumbel noise already on the device."""
    p = filtered_probs(logits, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    sorted_p, order = torch.sort(p, dim=-1, descending=True, stable=True)
    q, ids = sorted_p[:, :cfg.max_topk], order[:, :cfg.max_topk]
    q = q / q.sum(dim=-1, keepdim=True)
    gp = torch.log(q + 1e-6) + cfg.noise_scale * g
    w = torch.softmax(gp / cfg.gumbel_tau, dim=-1)
    emitted = ids.gather(-1, gp.argmax(dim=-1, keepdim=True)).squeeze(-1)
    mixed = torch.einsum("bk,bkd->bd", w.to(embedding.dtype), embedding[ids])
    return ids, gp, w, emitted, entropy_of(p), mixed


class StubTokenizer:
    def __init__(self, vocab):
        self.pad_id, self.eos_id, self.think_end_id = 0, vocab - 2, vocab - 1

    def decode(self, ids):
        return " ".join(map(str, ids))


# ---- 1. parity -----------------------------------------------------------------------------------------------------
def parity_kernel1(device, V, B):
    from softgrpo.kernels.soft_token_step import discrete_step_triton, soft_token_step_triton
    from softgrpo.sampler import discrete_step
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(V, 64, generator=g).to(device)
    sample, step = torch.arange(B, device=device), torch.arange(B, device=device) + 3
    for name, cfg, scale, dtype in [
        ("defaults, bf16 logits", SoftStepConfig(), 3.0, torch.bfloat16),
        ("soft thinking (k 10, top_k 30, min_p)", SoftStepConfig(temperature=0.6, top_k=30, min_p=0.001,
                                                                 max_topk=10, noise_scale=0.0), 1.0, torch.float32),
        ("top_k 64", SoftStepConfig(top_k=64, top_p=0.99, max_topk=64), 1.0, torch.float32),
    ]:
        z = (torch.randn(B, V, generator=g) * scale).to(dtype).to(device)
        ref = soft_token_step(z, cfg, 77, sample, step, emb)
        out = soft_token_step_triton(z, cfg, 77, sample, step, emb)
        same = torch.equal(out.ids, ref.ids) and torch.equal(out.emitted, ref.emitted)
        err = max((out.gp - ref.gp).abs().max().item(), (out.weights - ref.weights).abs().max().item(),
                  (out.entropy - ref.entropy).abs().max().item(), (out.mixed - ref.mixed).abs().max().item())
        check(same and err < 1e-4, f"kernel 1 soft step vs sampler ({name}, B={B}, V={V})", f"max abs err {err:.2e}")
    z = torch.randn(B, V, generator=g).mul(2).to(device)
    tok = discrete_step_triton(z, 0.8, 20, 0.9, 0.0, 5, sample, step)
    check(torch.equal(tok, discrete_step(z, 0.8, 20, 0.9, 0.0, 5, sample, step)), "kernel 1 discrete step vs sampler")


def parity_kernel2(device, N, V, d, k):
    from softgrpo.kernels.fused_policy_logprob import fused_policy_logprob
    g = torch.Generator().manual_seed(1)
    hidden = (torch.randn(N, d, generator=g) / d**0.25).to(device)
    head = (torch.randn(V, d, generator=g) / d**0.25).to(device)
    ids = torch.randint(0, V, (N, k), generator=g).to(device)
    gp = torch.empty(N, k).uniform_(-6, 2, generator=g).to(device)
    tokens = torch.randint(0, V, (N,), generator=g).to(device)
    is_soft = (torch.rand(N, generator=g) < 0.6).to(device)
    up = torch.randn(N, generator=g).to(device)
    for dtype, tol_f, tol_g in [(torch.float32, 1e-5, 1e-4), (torch.bfloat16, 1e-2, 3e-2)]:
        h = hidden.to(dtype).requires_grad_()
        w = head.to(dtype).requires_grad_()
        out = fused_policy_logprob(h, w, ids, gp, tokens, is_soft, 0.9)
        gh, gw = torch.autograd.grad((out * up).sum(), (h, w))
        h32 = h.detach().float().requires_grad_()
        w32 = w.detach().float().requires_grad_()
        ref = policy_logprob(h32 @ w32.T, ids, gp, tokens, is_soft, 0.9)
        rh, rw = torch.autograd.grad((ref * up).sum(), (h32, w32))
        e = (rel(out, ref), rel(gh, rh), rel(gw, rw))
        check(e[0] < tol_f and e[1] < tol_g and e[2] < tol_g and torch.isfinite(out).all().item(),
              f"kernel 2 fwd+bwd vs loss.policy_logprob ({str(dtype)[6:]}, N={N}, V={V}, d={d})",
              f"rel err out {e[0]:.1e} dh {e[1]:.1e} dW {e[2]:.1e}")


def same_or_near_tie(ours, ref) -> tuple[bool, str]:
    """Rollouts agree token for token, or first diverge at a soft step whose two best candidates nearly tie in the
    reference (|gp_0 - gp_1| < 1e-2, noise off): float32 sums in another order may order such a pair either way."""
    notes = []
    for row, (a, b) in enumerate(zip(ours, ref)):
        ta, tb = a.tokens.tolist(), b.tokens.tolist()
        t = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), None)
        if t is None:
            if len(ta) != len(tb):
                return False, f"row {row}: lengths {len(ta)} vs {len(tb)}"
            continue
        if not (bool(b.is_soft[t]) and abs(float(b.gp[t, 0] - b.gp[t, 1])) < 1e-2):
            return False, f"row {row}: first differs at step {t} ({ta[t]} vs {tb[t]}), not a near tie"
        notes.append(f"row {row} near tie at step {t}")
    return True, "; ".join(notes)


def parity_engine(device, backend):
    from softgrpo import gpu_engine
    cfg_model = {**TINY, "vocab_size": 64, "initializer_range": 0.2}
    model = SoftTokenLM.from_config(cfg_model, seed=0).to(device).eval()
    tok = StubTokenizer(64)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]
    cfg = RolloutConfig(thinking=SoftStepConfig(top_k=6, top_p=0.9, max_topk=4, noise_scale=0.0), answer_top_k=5,
                        max_response_tokens=16, max_thinking_tokens=10)
    ref = plain_generate(model, tok, prompts, cfg, seed=5)
    eager = gpu_engine.generate(model, tok, prompts, cfg, seed=5, backend="torch", use_graph=False)
    ok, note = same_or_near_tie(eager, ref)
    check(ok, "engine (static cache, torch sampler) vs softgrpo.rollout, tiny fp32 model, noise off", note)
    if backend == "triton":
        fast = gpu_engine.generate(model, tok, prompts, cfg, seed=5, backend="triton")
        ok, note = same_or_near_tie(fast, eager)
        check(ok, f"engine (kernel 1{', CUDA graph' if device.type == 'cuda' else ''}) vs engine (torch sampler)",
              note)


# ---- 2a. decode ----------------------------------------------------------------------------------------------------
def build_models(config, device, dtype):
    """Our SoftTokenLM and transformers' Qwen2ForCausalLM with the same random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # allocate the weights in bf16 directly
    try:
        with torch.device(device):
            hf = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in config.items() if k != "architectures"}))
            ours = SoftTokenLM(config)
    finally:
        torch.set_default_dtype(old)
    hf = hf.to(dtype).eval()
    missing, unexpected = ours.load_state_dict(hf.state_dict(), strict=False)
    if [m for m in missing if not m.endswith("inv_freq")] or unexpected:
        raise Failed(f"weights do not line up: missing {missing[:3]} unexpected {unexpected[:3]}")
    return ours.to(dtype).eval(), hf


@torch.no_grad()
def naive_decode(hf, prompts, new_tokens, cfg: SoftStepConfig, noise):
    """transformers forward per step with a DynamicCache; the soft step as plain torch ops. Returns (seconds of the
    decode loop, emitted tokens [B, T])."""
    from transformers import DynamicCache
    device = prompts.device
    emb = hf.get_input_embeddings().weight
    cache = DynamicCache()
    out = hf(input_ids=prompts, past_key_values=cache, use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1].float()
    emitted = []
    sync(device)
    t0 = time.perf_counter()
    for t in range(new_tokens):
        ids, gp, w, tok, ent, mixed = torch_soft_chain(logits, cfg, noise[t], emb)
        emitted.append(tok)
        out = hf(inputs_embeds=mixed[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].float()
    sync(device)
    return time.perf_counter() - t0, torch.stack(emitted, 1)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_decode(device, config, B, P, T, backend, rows):
    from softgrpo import gpu_engine
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ours_model, hf = build_models(config, device, dtype)
    V = config["vocab_size"]
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(10, V - 10, (B, P), generator=g)
    seed = 1234
    # the same Philox noise the engine draws (stream 0, slot i, step t, sample b), precomputed for the baseline
    cfg = SoftStepConfig()
    noise = gumbel(seed, torch.arange(B).view(1, B, 1), torch.arange(T).view(T, 1, 1),
                   torch.arange(cfg.max_topk).view(1, 1, -1)).to(device)
    naive_s, naive_tok = naive_decode(hf, prompts.to(device), T, cfg, noise)
    del hf
    if device.type == "cuda":
        torch.cuda.empty_cache()
    rcfg = RolloutConfig(thinking=cfg, max_response_tokens=T, max_thinking_tokens=T)
    engine = gpu_engine.GpuRolloutEngine(ours_model, StubTokenizer(V), rcfg, B, P, backend=backend, sync_every=64)
    plist = prompts.tolist()
    engine.generate(plist, seed)  # compile, capture the graph
    runs = []
    for _ in range(2):
        rollouts = engine.generate(plist, seed)
        runs.append(engine.timing["decode_s"] / engine.timing["steps"] * T)
    ours_s = min(runs)
    # emitted-token agreement with the naive loop over the first steps (bf16: paths diverge once a near-tie flips)
    ours_tok = torch.stack([torch.nn.functional.pad(r.tokens, (0, T - r.tokens.numel())) for r in rollouts])
    n_cmp = min(32, T)
    agree = (ours_tok[:, :n_cmp] == naive_tok[:, :n_cmp].cpu()).float().mean().item()

    # bandwidth floor: every weight once (the tied embedding is read whole by the LM head) + the live KV cache
    params = {id(p): p for p in ours_model.parameters()}
    weight_bytes = sum(p.numel() * p.element_size() for p in params.values())
    L, nkv, hd = config["num_hidden_layers"], config["num_key_value_heads"], config["hidden_size"] // config[
        "num_attention_heads"]
    elem = torch.finfo(dtype).bits // 8
    kv_bytes = sum(2 * L * B * nkv * (P + t + 1) * hd * elem for t in range(T)) / T
    bw = copy_bandwidth(device, 1 << 30 if device.type == "cuda" else 1 << 22)
    floor_s = T * (weight_bytes + kv_bytes) / bw
    tps = lambda s: B * T / s  # noqa: E731
    size = f"B={B} prompt={P} new={T} V={V} d={config['hidden_size']} L={L}"
    rows.append(("decode tok/s vs naive HF loop", size, tps(naive_s), tps(ours_s), naive_s / ours_s,
                 f"emitted agreement first {n_cmp} steps {agree:.2f}"))
    rows.append(("decode tok/s vs bandwidth floor", size, tps(floor_s), tps(ours_s), floor_s / ours_s,
                 f"floor={(weight_bytes + kv_bytes) / 1e9:.2f} GB/step at {bw / 1e12:.2f} TB/s copy"))


# ---- 2b. kernel 2 --------------------------------------------------------------------------------------------------
def bench_kernel2(device, N, V, d, k, soft_frac, rows, backend):
    from softgrpo.kernels import policy_logprob_fn
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(2)
    hidden = (torch.randn(N, d, device=device, generator=g) / d**0.25).to(dtype).requires_grad_()
    head = (torch.randn(V, d, device=device, generator=g) / d**0.25).to(dtype).requires_grad_()
    ids = torch.randint(0, V, (N, k), device=device, generator=g)
    gp = torch.empty(N, k, device=device).uniform_(-6, 2, generator=g)
    tokens = torch.randint(0, V, (N,), device=device, generator=g)
    is_soft = torch.rand(N, device=device, generator=g) < soft_frac
    up = torch.randn(N, device=device, generator=g)

    def run(fn):
        def step():
            hidden.grad = head.grad = None
            (fn(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean") * up).sum().backward()
        return step

    result, fwd = {}, {}
    for name, fn in (("naive", policy_logprob_fn("torch")), ("ours", policy_logprob_fn(backend))):
        try:
            with torch.no_grad():
                fwd[name] = timeit(lambda: fn(hidden, head, ids, gp, tokens, is_soft, 1.0, "mean"), device)
        except torch.OutOfMemoryError:
            fwd[name] = float("nan")
        step = run(fn)
        try:
            step()
            hidden.grad = head.grad = None
            sync(device)
            if device.type == "cuda":
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                step()
                peak = torch.cuda.max_memory_allocated() - base
            else:
                peak = float("nan")
            result[name] = (timeit(step, device), peak)
        except torch.OutOfMemoryError:
            result[name] = (float("nan"), float("nan"))
            print(f"  {name} kernel-2 path ran out of memory at N={N}", flush=True)
        hidden.grad = head.grad = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    size = f"N={N} V={V} d={d} k={k} soft={soft_frac:.0%}"
    (tn, mn), (to, mo) = result["naive"], result["ours"]
    rows.append(("kernel 2 fwd+bwd ms", size, tn * 1e3, to * 1e3, tn / to, ""))
    rows.append(("kernel 2 fwd only ms", size, fwd["naive"] * 1e3, fwd["ours"] * 1e3, fwd["naive"] / fwd["ours"],
                 "no grad"))
    rows.append(("kernel 2 peak extra MiB", size, mn / 2**20, mo / 2**20, mo / mn if mn == mn else float("nan"),
                 "ratio = ours / naive (target <= 0.20)"))


# ---- 2c. kernel 1 --------------------------------------------------------------------------------------------------
def bench_kernel1(device, B, V, d, rows, backend):
    from softgrpo.kernels.philox_triton import key_tensor
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = SoftStepConfig()
    z = (torch.randn(B, V, device=device) * 3).to(dtype)
    emb = torch.randn(V, d, device=device).to(dtype)
    sample, step = torch.arange(B, device=device), torch.full((B,), 7, device=device)
    g = gumbel(9, sample.cpu().view(-1, 1), step.cpu().view(-1, 1), torch.arange(cfg.max_topk).view(1, -1)).to(device)
    base = timeit(lambda: torch_soft_chain(z, cfg, g, emb), device)
    size = f"B={B} V={V} d={d} {str(dtype)[6:]} logits"
    if backend == "triton":
        from softgrpo.kernels.soft_token_step import sampling_step
        keys = key_tensor(9, B, device)
        ours = timeit(lambda: sampling_step(z, keys, sample, step, cfg, None, emb), device)
        rows.append(("kernel 1 soft step us", size, base * 1e6, ours * 1e6, base / ours,
                     "baseline: torch chain, noise precomputed on device"))
        answer, invt = (1.0, 5, 0.95, 0.0), torch.ones(B, device=device)
        both = timeit(lambda: sampling_step(z, keys, sample, step, cfg, answer, emb, answer_entropy=True,
                                            inv_temperature=invt), device)
        rows.append(("kernel 1 engine step us", size, base * 1e6, both * 1e6, base / both,
                     "ours also: discrete step, answer entropy, logsumexp (baseline: soft chain only)"))
    else:
        ours = timeit(lambda: soft_token_step(z, cfg, 9, sample, step, emb), device)
        rows.append(("kernel 1 soft step us", size, base * 1e6, ours * 1e6, base / ours,
                     "torch backend: the reference sampler (host Philox) vs the chain"))


# ---- main ----------------------------------------------------------------------------------------------------------
def write_rows(rows, path: pathlib.Path, device_name):
    import triton
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    new = not path.exists()
    with path.open("a") as f:
        if new:
            f.write("| date | device | torch | triton | what | size | baseline | ours | ratio | notes |\n")
            f.write("|---|---|---|---|---|---|---|---|---|---|\n")
        for what, size, base, ours, ratio, notes in rows:
            f.write(f"| {date} | {device_name} | {torch.__version__} | {triton.__version__} | {what} | {size} | "
                    f"{base:.4g} | {ours:.4g} | {ratio:.3g} | {notes} |\n")


def print_table(rows, device_name):
    print(f"\nresults on {device_name} (torch {torch.__version__})")
    w = max(len(r[0]) for r in rows)
    s = max(len(r[1]) for r in rows)
    print(f"{'what':<{w}}  {'size':<{s}}  {'baseline':>10}  {'ours':>10}  {'ratio':>7}  notes")
    for what, size, base, ours, ratio, notes in rows:
        print(f"{what:<{w}}  {size:<{s}}  {base:>10.4g}  {ours:>10.4g}  {ratio:>7.3g}  {notes}")


def distributed_part(args, device, rows) -> None:
    """(d) the worker's multi-device path (bench/bench_distributed.py): FSDP2 under torchrun with NCCL on every visible
    GPU against one GPU, same job and seed. Runs by itself with 2 or more GPUs; on one GPU it says it was not
    measured (its rows then stay absent from results.md)."""
    import bench_distributed

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus < 2 and not args.distributed:
        print(f"(d) distributed: {gpus} GPU(s) visible; the NCCL path needs 2 or more: NOT MEASURED", flush=True)
        return
    print(f"(d) distributed, {gpus or 2} ranks", flush=True)
    try:
        bench_distributed.bench_distributed("cuda" if gpus >= 2 else "cpu", gpus if gpus >= 2 else 2,
                                            "dry" if args.dry_run else "quick" if args.quick else "full", rows)
    except bench_distributed.Failed as err:
        raise Failed(f"distributed: {err}") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes: a GPU smoke run")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU (Triton via TRITON_INTERPRET=1)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results.md"))
    ap.add_argument("--skip", default="", help="comma list of parts to skip: parity,decode,kernel2,kernel1,distributed")
    ap.add_argument("--distributed", action="store_true",
                    help="run the multi-device part even where it would not run by itself (a dry run: 2 gloo ranks)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    backend = "triton" if triton_available(device) else "torch"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 references stay fp32
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = "cpu (dry run)"
        torch.set_num_threads(1)
    print(f"device {device_name}; kernels backend {backend}; quick={args.quick} dry_run={args.dry_run}", flush=True)
    if args.dry_run:
        sizes = dict(k1=(4, 300, 16), k2=[(24, 200, 32, 5, 0.75)], dec=(TINY, 2, 8, 6), par_v=300, par_b=3,
                     par_k2=(16, 200, 32, 5))
    elif args.quick:
        sizes = dict(k1=(64, 151936, 1536), k2=[(2048, 151936, 1536, 5, 0.75)], dec=(QWEN_1_5B, 16, 128, 64),
                     par_v=151936, par_b=8, par_k2=(256, 151936, 1536, 5))
    else:
        sizes = dict(k1=(64, 151936, 1536), k2=[(16384, 151936, 1536, 5, 0.75), (16384, 151936, 1536, 5, 0.0)],
                     dec=(QWEN_1_5B, 64, 128, 512), par_v=151936, par_b=64, par_k2=(1024, 151936, 1536, 5))
    rows = []
    t_start = time.perf_counter()
    try:
        if "parity" not in skip:
            print("parity checks", flush=True)
            if backend == "triton":
                parity_kernel1(device, sizes["par_v"], sizes["par_b"])
                parity_kernel2(device, *sizes["par_k2"])
            else:
                print("  (Triton unavailable: kernel parity skipped; run under TRITON_INTERPRET=1 or on a GPU)")
            parity_engine(device, backend)
        if "kernel1" not in skip:
            print("(c) kernel 1", flush=True)
            bench_kernel1(device, *sizes["k1"], rows, backend)
        if "kernel2" not in skip:
            for N, V, d, k, frac in sizes["k2"]:
                print(f"(b) kernel 2, soft fraction {frac}", flush=True)
                bench_kernel2(device, N, V, d, k, frac, rows, backend)
        if "decode" not in skip:
            print("(a) decode", flush=True)
            config, B, P, T = sizes["dec"]
            bench_decode(device, config, B, P, T, backend if device.type == "cuda" else "torch", rows)
        if "distributed" not in skip:
            distributed_part(args, device, rows)
    except Failed as e:
        print(f"PARITY FAILED: {e}", flush=True)
        return 1
    finally:
        if rows:
            write_rows(rows, pathlib.Path(args.results), device_name)
            print_table(rows, device_name)
        print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
