"""`serve`: the HTTP process behind the remote engine (src/engine/remote-engine.ts).

It answers the Node engine's own request JSON with softgrpo.rollout on a PyTorch model (GPU when available), so a
Workers deployment, or a model too large for onnxruntime on the API's CPU, gets the same soft-thinking decode:

    POST /v1/generate  {"model": id, "request": GenerationRequest}  -> 200 GenerationResult
                                                                      -> 400 {"error": {"message", "param"}}
    GET  /health                                                      -> 200 {"models": [...]}

GenerationRequest / GenerationResult are the types of src/engine/types.ts (messages, mode, soft_thinking, answer,
max_tokens, seed, samples, stop, logprobs -> prompt_tokens, samples[{sample, reasoning, answer, token_ids,
reasoning_tokens, answer_tokens, finish_reason, thinking_end, logprobs}]). As in the Node engine (sample-decoder.ts):
- `answer.temperature` 0 is greedy end to end: the answer takes the argmax and soft thinking must run without Gumbel
  noise (`soft_thinking.noise_scale` 0, else 400 naming it), so the result does not depend on the seed;
- `stop` (up to 4 strings) ends a sample at the first answer token whose text completes one, the answer cut before
  it (finish_reason "stop"); decoding is causal, so the rollout is cut afterwards (`cut_at_stop`);
- `logprobs` (null, or the number of alternatives) reports every answer token (eos excluded) under log_softmax of the
  raw logits, recomputed by one forward over the rollout's own inputs (`answer_logprobs`).

    gpu-worker/.venv/bin/python -m softgrpo.serve --model tiny-arith=models/tiny --port 8100 [--token SECRET] \
        [--engine plain|static] [--backend torch|triton]

--engine plain (default on CPU) decodes with softgrpo.rollout, the reference; --engine static with
softgrpo.gpu_engine (static KV cache; with --backend triton on CUDA the decode step is a CUDA graph with kernel 1 in
it). --backend triton needs CUDA (or TRITON_INTERPRET=1) and is checked at start-up. Defaults on CUDA: static +
triton. Requests a chosen engine cannot serve (kernel 1 needs 0 < top_k <= 64) answer 400 naming the field.

One generation runs at a time (a lock around the model); the standard library's threading server keeps the
health check responsive meanwhile.
"""
from __future__ import annotations

import argparse
import json
import math
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import torch

from softgrpo.config import TRITON_MAX_TOPK, check_engine_options
from softgrpo.model import SoftTokenLM
from softgrpo.rollout import Rollout, RolloutConfig
from softgrpo.rollout_engine import make_rollout_engine
from softgrpo.sampler import SoftStepConfig
from softgrpo.tokenizer import ChatTokenizer

MAX_BODY_BYTES = 1 << 20
STATIC_ENGINES_KEPT = 4  # static engines (KV cache + CUDA graphs) kept per model, least recently used dropped
PROMPT_BUCKET = 64  # static engines are built for prompts up to a multiple of this (shorter ones are left-padded)


class RequestError(ValueError):
    """Bad request content; `param` names the field (answered with 400)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass
class ServedModel:
    model: SoftTokenLM
    tokenizer: ChatTokenizer
    context_length: int
    lock: threading.Lock
    engine: str = "plain"  # "plain" | "static"
    backend: str = "torch"  # "torch" | "triton" (the static engine's sampler)
    rollout: Callable | None = None  # rollout_engine.make_rollout_engine(engine, backend, ...), made on first use

    def check_request(self, cfg: RolloutConfig) -> None:
        """Raise RequestError for settings the chosen engine cannot decode (before any work starts)."""
        if self.engine != "static":
            return
        if self.backend == "triton":
            phases = [("answer.top_k", cfg.answer_top_k)] if cfg.answer_temperature != 0 else []
            if cfg.mode == "soft":
                phases.insert(0, ("soft_thinking.top_k", cfg.thinking.top_k))
            for param, value in phases:
                if not 0 < value <= TRITON_MAX_TOPK:
                    raise RequestError(param, f"{param} must be in 1..{TRITON_MAX_TOPK} on this server (--engine "
                                              f"static --backend triton: kernel 1 filters within the top_k set), "
                                              f"got {value}")

    def generate(self, prompts: list[list[int]], cfg: RolloutConfig, seed: int, samples: list[int]) -> list[Rollout]:
        """Decode with the chosen engine (softgrpo.rollout_engine). Call under `lock`."""
        if self.rollout is None:
            self.rollout = make_rollout_engine(self.engine, self.backend, self.model, self.tokenizer, 0,
                                               keep=STATIC_ENGINES_KEPT, prompt_bucket=PROMPT_BUCKET)
        return self.rollout(prompts, cfg, seed, samples)


def load_served_model(folder: str | Path, device: str, engine: str = "plain", backend: str = "torch") -> ServedModel:
    """Load a model folder for serving with an explicit engine and backend (checked here: a Triton backend that
    cannot run on `device` fails at start-up, not on the first request: ValueError naming the option)."""
    check_engine_options(backend, engine, device)
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    model = SoftTokenLM.from_pretrained(folder, device=device).eval()
    context = int(manifest.get("context_length") or model.cfg.max_position_embeddings)
    return ServedModel(model, ChatTokenizer.from_pretrained(folder), context, threading.Lock(), engine, backend)


def _field(obj: dict, name: str, kind, prefix: str = ""):
    if not isinstance(obj, dict) or name not in obj:
        raise RequestError(prefix + name, f"{prefix + name} is required")
    value = obj[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RequestError(prefix + name, f"{prefix + name} must be {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise RequestError(prefix + name, f"{prefix + name} must be a finite number")
    return value


def _ranged(obj: dict, name: str, kind, prefix: str, ok, text: str):
    """_field plus a range check; `text` says the range in the 400 message (the Node schema's ranges)."""
    value = _field(obj, name, kind, prefix)
    if not ok(value):
        raise RequestError(prefix + name, f"{prefix + name} must be {text}, got {value!r}")
    return value


def _sampling(obj: dict, prefix: str, greedy_ok: bool) -> tuple[float, int, float, float]:
    """(temperature, top_k, top_p, min_p) of a SamplingSettings object. Only the answer phase may be greedy (0)."""
    if greedy_ok:
        temperature = _ranged(obj, "temperature", float, prefix, lambda v: v >= 0, ">= 0 (0 = greedy)")
    else:
        temperature = _ranged(obj, "temperature", float, prefix, lambda v: v > 0, "> 0")
    return (temperature, _ranged(obj, "top_k", int, prefix, lambda v: v >= 0, ">= 0 (0 = off)"),
            _ranged(obj, "top_p", float, prefix, lambda v: 0 < v <= 1, "in (0, 1]"),
            _ranged(obj, "min_p", float, prefix, lambda v: 0 <= v < 1, "in [0, 1)"))


def rollout_config(request: dict, max_tokens: int, vocab_size: int | None = None) -> RolloutConfig:
    """The RolloutConfig of a GenerationRequest (every field required: the Node side resolves defaults).
    Values out of range answer 400 naming the field, never a failure inside the sampler."""
    soft, answer = _field(request, "soft_thinking", dict), _field(request, "answer", dict)
    mode = _field(request, "mode", str)
    if mode not in ("soft", "discrete"):
        raise RequestError("mode", "mode must be 'soft' or 'discrete'")
    st = "soft_thinking."
    temperature, top_k, top_p, min_p = _sampling(soft, st, greedy_ok=False)
    max_k = min(64, vocab_size or 64)
    max_topk = _ranged(soft, "max_topk", int, st, lambda v: 1 <= v <= max_k, f"in 1..{max_k}")
    gumbel_tau = _ranged(soft, "gumbel_tau", float, st, lambda v: v > 0, "> 0")
    noise_scale = _ranged(soft, "noise_scale", float, st, lambda v: v >= 0, ">= 0")
    max_thinking = _ranged(soft, "max_thinking_tokens", int, st, lambda v: v >= 1, ">= 1")
    if "cold_stop" not in soft:
        raise RequestError(st + "cold_stop", f"{st}cold_stop is required (null = off)")
    cold = soft["cold_stop"]
    if cold is not None and not isinstance(cold, dict):
        raise RequestError(st + "cold_stop", f"{st}cold_stop must be an object or null")
    cs = st + "cold_stop."
    answer_temperature, answer_top_k, answer_top_p, answer_min_p = _sampling(answer, "answer.", greedy_ok=True)
    if answer_temperature == 0 and mode == "soft" and noise_scale != 0:
        raise RequestError(st + "noise_scale", f"{st}noise_scale must be 0 with answer.temperature 0 (greedy end to "
                                               f"end), got {noise_scale!r}")
    return RolloutConfig(
        mode=mode,
        thinking=SoftStepConfig(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, max_topk=max_topk,
                                gumbel_tau=gumbel_tau, noise_scale=noise_scale),
        answer_temperature=answer_temperature, answer_top_k=answer_top_k, answer_top_p=answer_top_p,
        answer_min_p=answer_min_p,
        max_response_tokens=max_tokens,
        max_thinking_tokens=max_thinking,
        cold_stop_entropy=None if cold is None else _ranged(cold, "entropy", float, cs, lambda v: v >= 0, ">= 0"),
        cold_stop_steps=256 if cold is None else _ranged(cold, "steps", int, cs, lambda v: v >= 1, ">= 1"),
    )


def _messages(request: dict) -> list[dict]:
    messages = _field(request, "messages", list)
    if not messages:
        raise RequestError("messages", "messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise RequestError(f"messages.{i}.role", f"messages[{i}].role must be 'system', 'user' or 'assistant'")
        if not isinstance(m.get("content"), str):
            raise RequestError(f"messages.{i}.content", f"messages[{i}].content must be a string")
    return messages


MAX_STOP_STRINGS, MAX_TOP_LOGPROBS = 4, 20


def _stop_and_logprobs(request: dict) -> tuple[list[str], int | None]:
    """The optional `stop` (list of up to 4 non-empty strings) and `logprobs` (null or 0..20) of a request."""
    stop = request.get("stop")
    if stop is None:
        stop = []
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS
            or not all(isinstance(x, str) and x for x in stop)):
        raise RequestError("stop", f"stop must be a list of at most {MAX_STOP_STRINGS} non-empty strings")
    top = request.get("logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise RequestError("logprobs", f"logprobs must be null or an integer in 0..{MAX_TOP_LOGPROBS}, got {top!r}")
    return stop, top


def cut_at_stop(decode: Callable[[list[int]], str], answer_ids: list[int], stop: list[str]) -> tuple[int, str] | None:
    """(answer tokens kept, answer text) at the first answer token whose decoded text contains a stop string, the
    text cut before the earliest one; None when no stop string appears. Mirrors src/engine/stop-strings.ts."""
    if not stop or not any(s in decode(answer_ids) for s in stop):
        return None
    for kept in range(1, len(answer_ids) + 1):
        text = decode(answer_ids[:kept])
        found = [at for at in (text.find(s) for s in stop) if at >= 0]
        if found:
            return kept, text[:min(found)]
    return None


@torch.no_grad()
def answer_logprobs(served: ServedModel, rollout: Rollout, count: int, top: int) -> list[dict]:
    """Logprob entries of the first `count` answer tokens of a rollout: one forward over the prompt and the inputs
    the rollout fed (soft mixtures while thinking), log_softmax of the raw logits at each answer step."""
    model, tok = served.model, served.tokenizer
    device = next(model.parameters()).device
    k = rollout.ids.shape[1]
    prompt = torch.tensor(rollout.prompt_ids, dtype=torch.long)
    prompt_ids = torch.zeros(len(prompt), k, dtype=torch.long)
    prompt_ids[:, 0] = prompt
    prompt_weights = torch.zeros(len(prompt), k)
    prompt_weights[:, 0] = 1.0
    ids = torch.cat([prompt_ids, rollout.ids[:-1]])[None].to(device)
    weights = torch.cat([prompt_weights, rollout.weights[:-1].float()])[None].to(device)
    logits = model(ids, weights).logits[0].double()  # [P + T - 1, V]: row P - 1 + t predicts step t
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt) - 1 + rollout.n_thinking
    tokens = rollout.tokens[rollout.n_thinking:rollout.n_thinking + count].tolist()

    def candidate(token_id: int, value: float) -> dict:
        raw = tok.token_bytes(token_id)
        return {"token": raw.decode("utf-8", errors="replace"), "bytes": list(raw), "logprob": value}

    entries = []
    for i, token in enumerate(tokens):
        row = logp[start + i]
        order = torch.sort(row, descending=True, stable=True).indices[:top].tolist()  # ties: lower id first
        entries.append({**candidate(token, float(row[token])),
                        "top_logprobs": [candidate(t, float(row[t])) for t in order]})
    return entries


def generation_result(served: ServedModel, request: dict) -> dict:
    """Run one GenerationRequest; returns the GenerationResult JSON."""
    messages = _messages(request)
    samples = _field(request, "samples", list)
    seed = _ranged(request, "seed", int, "", lambda v: 0 <= v < 2**53, "an integer in [0, 2^53)")
    if not samples or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in samples):
        raise RequestError("samples", "samples must be a non-empty list of integers in [0, 2^32) (Philox sample "
                                      "indices)")
    tok = served.tokenizer
    prompt = tok.encode_chat(messages)
    if len(prompt) >= served.context_length:
        raise RequestError("messages", f"the prompt has {len(prompt)} tokens; the context length is {served.context_length}")
    max_tokens = request.get("max_tokens")
    if max_tokens is None:
        max_tokens = served.context_length - len(prompt)
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError("max_tokens", f"max_tokens must be a positive integer or null, got {max_tokens!r}")
    elif len(prompt) + max_tokens > served.context_length:
        raise RequestError("max_tokens", f"prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceeds the context length {served.context_length}")
    cfg = rollout_config(request, max_tokens, served.model.cfg.vocab_size)
    stop, top = _stop_and_logprobs(request)
    served.check_request(cfg)
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    out = []
    with served.lock:
        rollouts = served.generate([prompt] * len(samples), cfg, seed, samples)
        for sample, r in zip(samples, rollouts):
            tokens = r.tokens.tolist()
            thinking = [t for t in tokens[: r.n_thinking] if t not in (tok.think_end_id, tok.eos_id)]
            answer = [t for t in tokens[r.n_thinking:] if t != tok.eos_id]
            result = {
                "sample": sample,
                "reasoning": decode(thinking),
                "answer": decode(answer),
                "token_ids": tokens,
                "reasoning_tokens": r.n_thinking,
                "answer_tokens": r.n_answer,
                "finish_reason": r.finish_reason,
                "thinking_end": r.thinking_end,
            }
            cut = cut_at_stop(decode, answer, stop)
            if cut is not None:
                kept, text = cut
                result.update(answer=text, token_ids=tokens[: r.n_thinking + kept], answer_tokens=kept,
                              finish_reason="stop")
                answer = answer[:kept]
            if top is not None:
                result["logprobs"] = answer_logprobs(served, r, len(answer), top) if answer else []
            out.append(result)
    return {"prompt_tokens": len(prompt), "samples": out}


def make_handler(models: dict[str, ServedModel], token: str | None):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, param: str | None = None) -> None:
            self._send(status, {"error": {"message": message, "param": param}})

        def do_GET(self):
            if self.path == "/health":
                return self._send(200, {"models": sorted(models)})
            self._error(404, f"no route GET {self.path}")

        def do_POST(self):
            if self.path != "/v1/generate":
                return self._error(404, f"no route POST {self.path}")
            if token and self.headers.get("authorization") != f"Bearer {token}":
                return self._error(401, "missing or wrong bearer token")
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                return self._error(400, "content-length must be a non-negative integer")
            if length > MAX_BODY_BYTES:
                return self._error(413, f"body over {MAX_BODY_BYTES} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                model_id = _field(body, "model", str)
                if model_id not in models:
                    raise RequestError("model", f"model {model_id!r} is not served here (serving {sorted(models)})")
                result = generation_result(models[model_id], _field(body, "request", dict))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return self._error(400, f"invalid JSON: {e}")
            except RecursionError:
                return self._error(400, "invalid JSON: nested too deeply")
            except RequestError as e:
                return self._error(400, str(e), e.param)
            except Exception as e:  # a bug, not bad input: answer 500 with the reason instead of dropping the socket
                self.log_error("generate failed: %r", e)
                return self._error(500, f"generation failed: {type(e).__name__}: {e}")
            self._send(200, result)

        def log_request(self, code="-", size="-"):  # one line per request is noise in tests; errors are still logged
            pass

    return Handler


def make_server(models: dict[str, ServedModel], host: str, port: int, token: str | None = None) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(models, token))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="id=folder (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--token", default=None, help="require this bearer token")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--engine", choices=("plain", "static"), default=None,
                        help="decode loop: plain = softgrpo.rollout, static = softgrpo.gpu_engine "
                             "(default: static on CUDA, plain on CPU)")
    parser.add_argument("--backend", choices=("torch", "triton"), default=None,
                        help="static engine's sampler: torch references or Triton kernel 1 "
                             "(default: triton on CUDA, torch on CPU)")
    args = parser.parse_args()
    on_cuda = str(args.device).startswith("cuda")
    engine = args.engine or ("static" if on_cuda else "plain")
    backend = args.backend or ("triton" if on_cuda else "torch")
    models = {}
    for spec in args.model:
        model_id, _, folder = spec.partition("=")
        try:
            models[model_id] = load_served_model(folder, args.device, engine, backend)
        except ValueError as err:
            parser.error(str(err))
    server = make_server(models, args.host, args.port, args.token)
    print(f"serving {sorted(models)} on http://{args.host}:{server.server_address[1]} "
          f"(device {args.device}, engine {engine}, backend {backend})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
