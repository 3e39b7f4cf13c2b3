"""`serve`: the HTTP process behind the remote engine (src/engine/remote-engine.ts), a serving replica.

It answers the Node engine's own request JSON with softgrpo.rollout on a PyTorch model (GPU when available), so a
Workers deployment, or a model too large for onnxruntime on the API's CPU, gets the same soft-thinking decode:

    POST /v1/generate  {"model": id, "request": GenerationRequest, "stream"?: bool, "files"?: {key, files}}
        -> 200 GenerationResult (application/json), or with "stream": true application/x-ndjson, one object a line
           as tokens are decided: {"type": "delta", sample, phase, text[, logprobs]}, {"type": "sample_done",
           sample}, then {"type": "result", result} (or {"type": "error", error} when it fails midway)
        -> 400 {"error": {"message", "param"}}    502 when a model's files cannot be fetched
    GET  /health  -> 200 {"models": [pinned ids], "held": [pinned ids + loaded keys], "load": n}

GenerationRequest / GenerationResult are the types of src/engine/types.ts (messages, mode, soft_thinking, answer,
max_tokens, seed, samples, stop, logprobs -> prompt_tokens, samples[{sample, reasoning, answer, token_ids,
reasoning_tokens, answer_tokens, finish_reason, thinking_end, logprobs}]). As in the Node engine (sample-decoder.ts):
- `answer.temperature` 0 is greedy end to end: the answer takes the argmax and soft thinking must run without Gumbel
  noise (`soft_thinking.noise_scale` 0, else 400 naming it), so the result does not depend on the seed;
- `stop` (up to 4 strings) ends a sample at the first answer token whose text completes one, the answer cut before
  it (finish_reason "stop"); decoding is causal, so the rollout is cut afterwards (`cut_at_stop`);
- `logprobs` (null, or the number of alternatives) reports every answer token (eos excluded) under log_softmax of the
  raw logits, recomputed by one forward over the rollout's own inputs (`answer_logprobs`); streamed, they come with
  the sample's last answer delta.

Models: `--model id=folder` pins a folder at start-up; any other model comes with `files` (signed GET URLs of its
serving files and a cache key, sent by the API) and is loaded on first use into an LRU cache within
--memory-budget-gb (softgrpo.model_store). Streaming is token by token with the plain engine (a step hook in
softgrpo.rollout.generate) and in windows of 16 steps with the static engine (where its host loop syncs anyway). A
streamed request whose client goes away is cancelled: the next write fails and decoding stops there.

    gpu-worker/.venv/bin/python -m softgrpo.serve [--model tiny-arith=models/tiny] --port 8100 [--token SECRET] \
        [--api https://api.example --worker-token WT [--public-url http://this-host:8100]] \
        [--engine plain|static] [--backend torch|triton] [--memory-budget-gb 20] [--cache-dir DIR]

--api registers this process with the API as a serving replica (softgrpo.replica: worker token, heartbeat with its
load and held models, deregistration at exit); the API then routes requests to it and sends its bearer token.
--engine plain (default on CPU) decodes with softgrpo.rollout, the reference; --engine static with
softgrpo.gpu_engine (static KV cache; with --backend triton on CUDA the decode step is a CUDA graph with kernel 1 in
it). --backend triton needs CUDA (or TRITON_INTERPRET=1) and is checked at start-up. Defaults on CUDA: static +
triton. Requests a chosen engine cannot serve (kernel 1 needs 0 < top_k <= 64) answer 400 naming the field.

One generation runs at a time per model (a lock around it); the standard library's threading server keeps the
health check responsive meanwhile.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import torch

from softgrpo.config import TRITON_MAX_TOPK, check_engine_options
from softgrpo.model import SoftTokenLM
from softgrpo.model_store import ModelLoadError, ModelStore, pinned_key
from softgrpo.replica import ReplicaRegistration
from softgrpo.rollout import Rollout, RolloutConfig, generate
from softgrpo.rollout_engine import make_rollout_engine
from softgrpo.serve_request import (RequestError, _field, _messages, _ranged, _stop_and_logprobs, cut_at_stop,
                                    rollout_config)
from softgrpo.text_stream import SampleTextStream
from softgrpo.tokenizer import ChatTokenizer

__all__ = ["RequestError", "ServedModel", "load_served_model", "generation_result", "make_server", "cut_at_stop",
           "rollout_config"]

MAX_BODY_BYTES = 1 << 20
STATIC_ENGINES_KEPT = 4  # static engines (KV cache + CUDA graphs) kept per model, least recently used dropped
PROMPT_BUCKET = 64  # static engines are built for prompts up to a multiple of this (shorter ones are left-padded)


class Cancelled(Exception):
    """The streaming client went away."""


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

    def generate(self, prompts: list[list[int]], cfg: RolloutConfig, seed: int, samples: list[int],
                 on_step=None) -> list[Rollout]:
        """Decode with the chosen engine (softgrpo.rollout_engine). Call under `lock`. on_step sees each step's
        tokens, for streaming, and may stop decoding: at every step with the plain engine (softgrpo.rollout), per
        `sync_every` window (16 steps) with the static one (softgrpo.gpu_engine), where the host syncs anyway."""
        if self.engine == "plain":
            return generate(self.model, self.tokenizer, prompts, cfg, seed, samples, on_step=on_step)
        if self.rollout is None:
            self.rollout = make_rollout_engine(self.engine, self.backend, self.model, self.tokenizer, 0,
                                               keep=STATIC_ENGINES_KEPT, prompt_bucket=PROMPT_BUCKET)
        return self.rollout(prompts, cfg, seed, samples, on_step=on_step)


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


def generation_result(served: ServedModel, request: dict, emit: Callable[[dict], None] | None = None) -> dict:
    """Run one GenerationRequest; returns the GenerationResult JSON. With `emit`, each GenerationEvent (token-level
    text deltas, then each sample's sample_done) is passed to it as it happens; emit raising Cancelled stops
    decoding (the result then has the rows still running as "cancelled")."""
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
    streams = [SampleTextStream(decode, tok.think_end_id, tok.eos_id, stop) for _ in samples]
    cancelled, steps = [], []

    def on_step(tokens: list[int], thinking: list[bool], active: list[bool]) -> bool:
        steps.append(1)
        try:
            for row, (token, think, live) in enumerate(zip(tokens, thinking, active)):
                for phase, text in streams[row].push(token, think) if live else []:
                    emit({"type": "delta", "sample": samples[row], "phase": phase, "text": text})
        except Cancelled:
            cancelled.append(True)
        return bool(cancelled)

    out = []
    with served.lock:
        rollouts = served.generate([prompt] * len(samples), cfg, seed, samples, on_step if emit else None)
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
    if cancelled:
        print(f"generation cancelled after {len(steps)} of at most {max_tokens} steps: the client went away",
              file=sys.stderr, flush=True)
    if emit and not cancelled:
        for stream, result in zip(streams, out):
            rest = stream.finish("reasoning", result["reasoning"])
            if rest:
                emit({"type": "delta", "sample": result["sample"], "phase": "reasoning", "text": rest})
            rest = stream.finish("answer", result["answer"])
            if rest or result.get("logprobs"):
                emit({"type": "delta", "sample": result["sample"], "phase": "answer", "text": rest,
                      **({"logprobs": result["logprobs"]} if result.get("logprobs") else {})})
            emit({"type": "sample_done", "sample": result})
    return {"prompt_tokens": len(prompt), "samples": out}


class ReplicaServer(ThreadingHTTPServer):
    """The HTTP server with what the handler needs: the model store, the accepted tokens and the load count."""
    daemon_threads = True

    def __init__(self, address, handler, store: ModelStore, token: str | None):
        super().__init__(address, handler)
        self.store, self.token = store, token
        self.registration: ReplicaRegistration | None = None
        self.load, self.load_lock = 0, threading.Lock()

    def state(self) -> dict:
        return {"load": self.load, "models": self.store.held()}

    def accepts(self, header: str | None) -> bool:
        tokens = [self.token, self.registration.token if self.registration else None]
        return any(header == f"Bearer {t}" for t in tokens if t) or not any(tokens)


def make_handler():
    class Handler(BaseHTTPRequestHandler):
        server: ReplicaServer

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, param: str | None = None) -> None:
            self._send(status, {"error": {"message": message, "param": param}})

        def _line(self, obj: dict) -> None:
            """One NDJSON line as one HTTP chunk; a closed connection raises Cancelled."""
            data = (json.dumps(obj) + "\n").encode()
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError) as err:
                raise Cancelled() from err

        def do_GET(self):
            if self.path == "/health":
                store = self.server.store
                return self._send(200, {"models": sorted(store.pinned), "held": store.held(), "load": self.server.load})
            self._error(404, f"no route GET {self.path}")

        def do_POST(self):
            if self.path != "/v1/generate":
                return self._error(404, f"no route POST {self.path}")
            if not self.server.accepts(self.headers.get("authorization")):
                return self._error(401, "missing or wrong bearer token")
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                return self._error(400, "content-length must be a non-negative integer")
            if length > MAX_BODY_BYTES:
                return self._error(413, f"body over {MAX_BODY_BYTES} bytes")
            with self.server.load_lock:
                self.server.load += 1
            try:
                self._generate(length)
            finally:
                with self.server.load_lock:
                    self.server.load -= 1

        def _generate(self, length: int) -> None:
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                model_id = _field(body, "model", str)
                stream = body.get("stream") is True
                served = self.server.store.get(model_id, body.get("files"))
                request = _field(body, "request", dict)
                if not stream:
                    return self._send(200, generation_result(served, request))
                self._stream(served, request)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return self._error(400, f"invalid JSON: {e}")
            except RecursionError:
                return self._error(400, "invalid JSON: nested too deeply")
            except RequestError as e:
                return self._error(400, str(e), e.param)
            except ModelLoadError as e:
                self.log_error("model load failed: %s", e)
                return self._error(502, f"model load failed: {e}")
            except Exception as e:  # a bug, not bad input: answer 500 with the reason instead of dropping the socket
                self.log_error("generate failed: %r", e)
                return self._error(500, f"generation failed: {type(e).__name__}: {e}")

        def _stream(self, served: ServedModel, request: dict) -> None:
            """Checks the request first (a 400 is still plain JSON), then streams NDJSON chunks."""
            started = []

            def emit(event: dict) -> None:
                if not started:
                    self._start_stream()
                    started.append(True)
                self._line(event)

            try:
                result = generation_result(served, request, emit)
                if not started:
                    self._start_stream()
                self._line({"type": "result", "result": result})
                self._line_end()
            except Cancelled:
                self.close_connection = True
            except (RequestError, ModelLoadError, Exception) as e:
                if not started:
                    raise
                param = e.param if isinstance(e, RequestError) else None
                try:
                    self._line({"type": "error", "error": {"message": f"{type(e).__name__}: {e}", "param": param}})
                    self._line_end()
                except Cancelled:
                    pass

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/x-ndjson")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-store")
            self.send_header("connection", "close")
            self.close_connection = True
            self.end_headers()

        def _line_end(self) -> None:
            try:
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass

        def log_request(self, code="-", size="-"):  # one line per request is noise in tests; errors are still logged
            pass

    Handler.protocol_version = "HTTP/1.1"
    return Handler


def make_server(models: dict[str, ServedModel], host: str, port: int, token: str | None = None,
                store: ModelStore | None = None) -> ReplicaServer:
    """A serve HTTP server over `models` (pinned) or a full ModelStore (which then holds the pinned models)."""
    if store is None:
        store = ModelStore(lambda folder: load_served_model(folder, "cpu"), budget_bytes=0,
                           cache_dir=tempfile.mkdtemp(prefix="serve-cache-"), pinned=models)
    return ReplicaServer((host, port), make_handler(), store, token)


def _default_budget(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.6)
    return 4 << 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="id=folder, pinned at start-up (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--token", default=None, help="also accept this bearer token (without --api: require it)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--engine", choices=("plain", "static"), default=None,
                        help="decode loop: plain = softgrpo.rollout, static = softgrpo.gpu_engine "
                             "(default: static on CUDA, plain on CPU)")
    parser.add_argument("--backend", choices=("torch", "triton"), default=None,
                        help="static engine's sampler: torch references or Triton kernel 1 "
                             "(default: triton on CUDA, torch on CPU)")
    parser.add_argument("--api", default=os.environ.get("API_URL"), help="register as a serving replica of this API")
    parser.add_argument("--worker-token", default=os.environ.get("WORKER_TOKEN"),
                        help="the API's worker token (registration); default $WORKER_TOKEN")
    parser.add_argument("--public-url", default=None, help="where the API reaches this process (default "
                                                           "http://HOST:PORT)")
    parser.add_argument("--capacity", type=int, default=1, help="generations run at once (reported to the API)")
    parser.add_argument("--memory-budget-gb", type=float, default=None,
                        help="parameter memory of models loaded on demand (default: 60%% of the GPU, 4 on CPU)")
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "softgrpo-serve-cache"))
    args = parser.parse_args()
    on_cuda = str(args.device).startswith("cuda")
    engine = args.engine or ("static" if on_cuda else "plain")
    backend = args.backend or ("triton" if on_cuda else "torch")
    if args.api and not args.worker_token:
        parser.error("--api needs --worker-token (or $WORKER_TOKEN)")
    try:
        check_engine_options(backend, engine, args.device)
        pinned, pinned_keys = {}, {}
        for spec in args.model:
            model_id, _, folder = spec.partition("=")
            pinned[model_id] = load_served_model(folder, args.device, engine, backend)
            pinned_keys[pinned_key(model_id, folder)] = model_id  # the API names these weights by this key
    except ValueError as err:
        parser.error(str(err))
    budget = int(args.memory_budget_gb * (1 << 30)) if args.memory_budget_gb else _default_budget(args.device)
    store = ModelStore(lambda folder: load_served_model(folder, args.device, engine, backend), budget,
                       args.cache_dir, pinned, pinned_keys=pinned_keys)
    server = make_server({}, args.host, args.port, args.token, store=store)
    public_url = args.public_url or f"http://{args.host}:{server.server_address[1]}"
    if args.api:
        server.registration = ReplicaRegistration(args.api, args.worker_token, public_url, args.capacity,
                                                  server.state)
        server.registration.start()

    def shut_down(*_):
        if server.registration:
            server.registration.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    print(f"serving {sorted(pinned)} on {public_url} (device {args.device}, engine {engine}, backend {backend}, "
          f"budget {budget / (1 << 30):.1f} GiB"
          + (f", replica {server.registration.id} of {args.api}" if server.registration else "") + ")", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
