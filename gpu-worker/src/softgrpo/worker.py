"""The GPU worker: pulls fine-tuning jobs from the API and runs them (docs/WORKER.md; protocol in docs/CONTRACTS.md).

    gpu-worker/.venv/bin/python -m softgrpo.worker --api http://127.0.0.1:8787 --token "$WORKER_TOKEN" \
        [--once] [--poll-seconds 2] [--device cpu|cuda] [--work-dir DIR] [--no-onnx]

One job at a time: claim (lease) -> download the training / validation files and validate every line before any
training -> resolve the hyperparameters ("auto" via the base model's manifest) and post them as the first event ->
run softgrpo.train (SofT-GRPO or GRPO, the job's grader and seed), streaming metrics / eval events -> upload every
checkpoint (servable model folder with its ONNX export + resumable training state) through signed URLs and
register it -> finish, or fail with a message the user can act on. A background thread heartbeats every
lease/3 seconds; between training steps the worker obeys its answer (cancel: stop, upload nothing; pause:
checkpoint, then acknowledge and release the job).

Crash safety: the event stream of a run is a deterministic function of its steps (hyperparameters, start, eval,
then per step metrics [+ eval], done). Each checkpoint carries `worker_state.json` with the next event sequence
number at that point, and its events are posted before it is registered. A re-claim (`resume_from`) restores the
training state and continues numbering at that sequence number, so events re-emitted for steps after the checkpoint
hit the sequence numbers the lost attempt already used and are ignored as duplicates: none duplicated, none lost.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from softgrpo.api_client import ApiError, Claim, DownloadError, LeaseLost, WorkerApi
from softgrpo.config import HyperparameterError, check_engine_options, resolve_hyperparameters, rollout_config
from softgrpo.data import DatasetError, example_messages, fit_prompts, parse_jsonl_lines
from softgrpo.model_folder import sha256_file
from softgrpo.rewards import make_grader

WORKER_STATE = "worker_state.json"


def log(message: str) -> None:
    print(f"[worker {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class JobFailure(Exception):
    """The job cannot go on: fail it with this user-facing error."""

    def __init__(self, code: str, message: str, param: str | None = None, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.param, self.retryable = code, message, param, retryable


class StopJob(Exception):
    """Stop working on the job without another call: cancelled, or the lease is gone."""


# ---- events ----------------------------------------------------------------------------------------------------------
class EventStream:
    """Numbers events per job (seq, seq+1, ...) and posts them in batches; a re-posted seq is a no-op server-side."""

    def __init__(self, api: WorkerApi, job_id: str, lease_token: str, next_seq: int):
        self.api, self.job_id, self.lease_token = api, job_id, lease_token
        self.next_seq = next_seq
        self.pending: list[dict] = []

    def emit(self, type_: str, message: str, data: dict | None = None, level: str = "info") -> None:
        self.pending.append({"seq": self.next_seq, "level": level, "type": type_, "message": message[:4000],
                             "data": _jsonable(data or {})})
        self.next_seq += 1

    def flush(self) -> None:
        while self.pending:
            batch = self.pending[:500]
            self.api.append_events(self.job_id, self.lease_token, batch)
            del self.pending[:len(batch)]


def _jsonable(value):
    """Metrics may hold NaN / inf (JSON has neither): null them."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---- heartbeat -------------------------------------------------------------------------------------------------------
class Heartbeat(threading.Thread):
    """Extends the lease every `interval` seconds; remembers what the API asked for (continue / pause / cancel)."""

    def __init__(self, api: WorkerApi, job_id: str, lease_token: str, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.api, self.job_id, self.lease_token, self.interval = api, job_id, lease_token, interval
        self.action = "continue"
        self.lease_lost = False
        self.trained_steps = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the main loop also beats at step boundaries

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.beat()

    def beat(self) -> str:
        with self._lock:
            if self.lease_lost or self.action == "cancel":  # both are final: the lease is gone
                return self.action
            try:
                self.action = self.api.heartbeat(self.job_id, self.lease_token, self.trained_steps)["action"]
            except LeaseLost:
                self.lease_lost = True
            except (ApiError, httpx.HTTPError) as err:  # transient: a later beat may get through before the lease ends
                log(f"job {self.job_id}: heartbeat failed: {err}")
            return self.action

    def stop(self) -> None:
        self._stopping.set()

    def check(self) -> None:
        """Raise StopJob when the job was cancelled or the lease is gone."""
        if self.lease_lost:
            raise StopJob("lease lost")
        if self.action == "cancel":
            raise StopJob("cancelled")


# ---- downloads -------------------------------------------------------------------------------------------------------
def download_dataset(api: WorkerApi, file: dict, dest: Path, param: str) -> list[tuple[int, dict]]:
    """Download a JSONL file and validate every line (the contract's line rules, as the API applied them at upload);
    returns (line number, example) pairs; JobFailure names the failing lines."""
    try:
        api.download(file, dest)
    except DownloadError as err:
        raise JobFailure("file_download_failed", f"Could not download {param} {file['name']}: {err}", param,
                         retryable=True) from err
    try:
        return parse_jsonl_lines(dest.read_bytes(), f"{param} {file['name']}")
    except DatasetError as err:
        raise JobFailure("invalid_file", f"{err}. Fix these lines and upload the file again.", param) from None


def check_prompts_fit(base_dir: Path, manifest: dict, hp, datasets: dict[str, list[tuple[int, dict]] | None]) -> None:
    """Every prompt plus max_response_tokens fits the model's context unless prompt_truncation is "left": the rule
    the API checked at create (src/routes/finetune/resolve-job.ts), checked again before any model loads."""
    from softgrpo.tokenizer import ChatTokenizer  # imports torch: after the cheap checks of a claim

    tokenizer = ChatTokenizer.from_pretrained(base_dir)
    for param, lines in datasets.items():
        if not lines:
            continue
        prompts = [tokenizer.encode_chat(example_messages(example)) for _, example in lines]
        try:
            fit_prompts(prompts, hp.max_response_tokens, manifest.get("context_length"), hp.prompt_truncation, param,
                        [number for number, _ in lines])
        except DatasetError as err:
            raise JobFailure("invalid_file", f"{err}.", param) from None


def download_model_files(api: WorkerApi, files: list[dict], folder: Path) -> Path:
    """Download the files of a base model folder that training reads (the ONNX export is for serving only).
    Kept across jobs: a file already there with the right sha256 is reused."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        if file["name"].endswith((".onnx", ".onnx.data")):
            continue
        path = folder / file["name"]
        if path.is_file() and path.stat().st_size == file["bytes"] and sha256_file(path) == file["sha256"]:
            continue
        api.download(file, path)
    return folder


def restore_checkpoint(api: WorkerApi, resume: dict, out_dir: Path) -> dict:
    """Download a registered checkpoint's training state into out_dir as softgrpo.checkpoint lays it out
    (<out>/checkpoints/step-NNNNNN/state/); returns its worker_state.json."""
    by_name = {f["name"]: f for f in resume["files"]}
    if WORKER_STATE not in by_name:
        raise JobFailure("checkpoint_unusable", f"checkpoint {resume['checkpoint_id']} has no {WORKER_STATE}; "
                         "it was not written by this worker and cannot be resumed", "resume_from")
    folder = out_dir / "checkpoints" / f"step-{resume['step']:06d}"
    api.download(by_name[WORKER_STATE], folder / WORKER_STATE)
    state = json.loads((folder / WORKER_STATE).read_text())
    for name in state["state_files"]:
        api.download(by_name[name], folder / "state" / name)
    return state


# ---- checkpoints -----------------------------------------------------------------------------------------------------
def upload_checkpoint(api: WorkerApi, job_id: str, lease_token: str, event: dict, next_seq: int) -> dict:
    """Upload a checkpoint's model folder + training state (+ worker_state.json) and register it."""
    model_dir, state_dir = Path(event["model_dir"]), Path(event["state_dir"])
    model_files = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    state_files = sorted(p.name for p in state_dir.iterdir() if p.is_file())
    clash = set(model_files) & (set(state_files) | {WORKER_STATE})
    if clash:
        raise RuntimeError(f"checkpoint file names clash between model and state folders: {sorted(clash)}")
    worker_state = state_dir.parent / WORKER_STATE
    worker_state.write_text(json.dumps({"step": event["step"], "next_event_seq": next_seq,
                                        "model_files": model_files, "state_files": state_files}, indent=2) + "\n")
    paths = [model_dir / n for n in model_files] + [state_dir / n for n in state_files] + [worker_state]
    files = [{"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths]
    urls = api.upload_urls(job_id, lease_token, event["step"], files)
    by_name = {u["name"]: u["url"] for u in urls["files"]}
    for path in paths:
        api.put_blob(by_name[path.name], path)
    metrics = {k: float(v) for k, v in event["metrics"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}
    return api.register_checkpoint(job_id, lease_token, event["step"], files, metrics)


# ---- one job ---------------------------------------------------------------------------------------------------------
def _describe_metrics(m: dict, n_steps: int) -> str:
    return (f"step {m['step']}/{n_steps}: reward {m['reward_mean']:.3f}, accuracy {m['accuracy']:.3f}, "
            f"kl {m.get('kl', 0.0):.4f}, {m['step_seconds']:.1f} s")


def compute_options(backend: str | None, rollout_engine: str | None, device: str) -> tuple[str, str]:
    """The kernels and rollout loop (softgrpo.train's `backend` / `rollout_engine`); None picks what the CLI picks:
    the Triton kernels and the static CUDA-graph engine on CUDA, the torch references on CPU."""
    on_cuda = str(device).startswith("cuda")
    return backend or ("triton" if on_cuda else "torch"), rollout_engine or ("static" if on_cuda else "plain")


def engine_for_job(backend: str, rollout_engine: str, device: str, hp, method: str) -> tuple[str, str | None]:
    """The rollout engine this job can use: the static engine samples only within a top_k set, so a job whose
    sampling settings it cannot honour runs on the plain engine (said in the start message, not silently)."""
    try:
        check_engine_options(backend, rollout_engine, device, rollout_config(hp, method))
        return rollout_engine, None
    except ValueError as err:
        if rollout_engine == "plain":
            raise
        check_engine_options(backend, "plain", device, rollout_config(hp, method))  # any other problem: raise
        return "plain", f"rollout engine 'plain' instead of '{rollout_engine}': {err}"


def run_job(api: WorkerApi, claim: Claim, work_root: Path, device: str, export_onnx: bool,
            heartbeat_api: WorkerApi, backend: str = "torch", rollout_engine: str = "plain") -> str:
    """Run one claimed job to its end; returns "succeeded" | "failed" | "paused" | "cancelled" | "lease_lost"."""
    job, token = claim["job"], claim["lease"]["token"]
    job_id = job["id"]
    heartbeat = Heartbeat(heartbeat_api, job_id, token, interval=max(1.0, claim["lease"]["seconds"] / 3))
    heartbeat.start()
    out_dir = work_root / "jobs" / job_id / f"attempt-{claim['attempt']}"
    shutil.rmtree(out_dir.parent, ignore_errors=True)  # earlier attempts' local files are not trusted
    out_dir.mkdir(parents=True)
    log(f"job {job_id}: attempt {claim['attempt']}/{claim['max_attempts']} "
        f"({job['method']['type']} on {job['model']}{', resuming at step %d' % claim['resume_from']['step'] if claim['resume_from'] else ''})")
    try:
        return _run_job(api, claim, out_dir, work_root, device, export_onnx, heartbeat, backend, rollout_engine)
    except StopJob as stop:
        log(f"job {job_id}: stopped ({stop})")
        return "cancelled" if str(stop) == "cancelled" else "lease_lost"
    except LeaseLost:  # a cancel answer releases the lease, so later calls see lease_lost too
        outcome = "cancelled" if heartbeat.action == "cancel" else "lease_lost"
        log(f"job {job_id}: lease released ({outcome}); stopping")
        return outcome
    except JobFailure as failure:
        log(f"job {job_id}: failed: {failure.code}: {failure.message}")
        return _report_failure(api, job_id, token, failure)
    except Exception as err:  # a bug or a broken environment: tell the user what happened, do not retry blindly
        log(f"job {job_id}: crashed: {type(err).__name__}: {err}")
        transient = isinstance(err, (httpx.HTTPError, DownloadError, MemoryError)) or "out of memory" in str(err)
        hint = (" Try a smaller batch_size, group_size or max_response_tokens." if "out of memory" in str(err)
                else "")
        return _report_failure(api, job_id, token, JobFailure(
            "training_error", f"The worker failed: {type(err).__name__}: {err}.{hint}", retryable=transient))
    finally:
        heartbeat.stop()
        shutil.rmtree(out_dir.parent, ignore_errors=True)


def _report_failure(api: WorkerApi, job_id: str, token: str, failure: JobFailure) -> str:
    try:
        api.fail(job_id, token, failure.code, failure.message, failure.param, failure.retryable)
    except LeaseLost:
        return "lease_lost"
    return "failed"


def _run_job(api: WorkerApi, claim: Claim, out_dir: Path, work_root: Path, device: str, export_onnx: bool,
             heartbeat: Heartbeat, backend: str, rollout_engine: str) -> str:
    from softgrpo.train import train  # torch import: after the cheap checks of a claim

    job, token = claim["job"], claim["lease"]["token"]
    job_id, method = job["id"], job["method"]["type"]
    manifest = claim["base_model"]["manifest"]

    # ---- inputs: every line validated before any model is loaded ---------------------------------------------------
    train_lines = download_dataset(api, claim["training_file"], out_dir / "train.jsonl", "training_file")
    train_examples = [example for _, example in train_lines]
    validation_lines, validation = None, None
    if claim["validation_file"]:
        validation_lines = download_dataset(api, claim["validation_file"], out_dir / "validation.jsonl",
                                            "validation_file")
        validation = [example for _, example in validation_lines]
    try:
        grader = make_grader(job["grader"])
    except ValueError as err:
        raise JobFailure("invalid_grader", str(err), "grader") from None
    try:
        hp = resolve_hyperparameters(job["method"]["hyperparameters"], method, len(train_examples), manifest,
                                     context_length=manifest.get("context_length"))
    except HyperparameterError as err:
        param = "hyperparameters" if err.param == "hyperparameters" else f"hyperparameters.{err.param}"
        raise JobFailure("invalid_hyperparameters", str(err), param) from None
    except ValueError as err:
        raise JobFailure("invalid_hyperparameters", str(err), "hyperparameters") from None
    rollout_engine, engine_note = engine_for_job(backend, rollout_engine, device, hp, method)
    if engine_note:
        log(f"job {job_id}: {engine_note}")
    compute = {"backend": backend, "rollout_engine": rollout_engine, "note": engine_note}
    heartbeat.check()

    base_dir = download_model_files(api, claim["base_model"]["files"], work_root / "models" / claim["base_model"]["id"])
    check_prompts_fit(base_dir, manifest, hp, {"training_file": train_lines, "validation_file": validation_lines})
    resume = claim["resume_from"]
    if resume:
        state = restore_checkpoint(api, resume, out_dir)
        events = EventStream(api, job_id, token, state["next_event_seq"])
        if resume["step"] >= hp.n_steps:  # the final checkpoint was registered; only finish was lost
            return _finish(api, job_id, token, events, hp.n_steps)
    else:
        events = EventStream(api, job_id, token, 0)  # a fresh run re-emits the same stream: lost attempts dedupe
        events.emit("hyperparameters", f"Resolved hyperparameters for {method}.", hp.to_dict())
    events.flush()
    heartbeat.trained_steps = resume["step"] if resume else 0

    resumed = bool(resume)
    while True:
        outcome = _train_until_stop(api, train, claim, hp, grader, train_examples, validation, base_dir, out_dir,
                                    device, export_onnx, heartbeat, events, resumed, compute)
        if outcome != "paused":
            return outcome
        try:
            api.ack_pause(job_id, token)
            log(f"job {job_id}: paused at step {heartbeat.trained_steps}")
            return "paused"
        except ApiError as err:
            if err.code != "invalid_job_status":
                raise
            log(f"job {job_id}: resumed before the pause was acknowledged; training on")
            heartbeat.action = "continue"
            resumed = True  # continue from the local checkpoint just written


def _train_until_stop(api, train, claim, hp, grader, train_examples, validation, base_dir, out_dir, device,
                      export_onnx, heartbeat, events: EventStream, resumed: bool, compute: dict) -> str:
    """Drive the softgrpo.train generator; returns "succeeded" | "paused"."""
    job, token = claim["job"], claim["lease"]["token"]
    job_id = job["id"]
    run = train(base_dir, train_examples, hp, job["method"]["type"], grader, out_dir,
                validation_examples=validation, seed=int(job["seed"]), resume=resumed, job_id=job_id,
                export_onnx=export_onnx, device=device, backend=compute["backend"],
                rollout_engine=compute["rollout_engine"])
    command = None
    try:
        while True:
            try:
                event = run.send(command)
            except StopIteration:
                raise RuntimeError("the training loop ended without a done event") from None
            command = None
            kind = event["type"]
            if kind == "start":
                if not event["resumed_from_step"]:
                    events.emit("message", f"Training started on {event['device']}: {event['n_train']} training and "
                                f"{event['n_validation']} validation examples, "
                                f"{event['trainable_parameters']} trainable parameters"
                                f"{'; ' + compute['note'] if compute['note'] else ''}.",
                                {**{k: v for k, v in event.items() if k not in ("type", "hyperparameters")}, **compute})
            elif kind == "metrics":
                heartbeat.trained_steps = event["step"]
                data = {k: v for k, v in event.items() if k != "type"}
                events.emit("metrics", _describe_metrics(data, hp.n_steps), data)
                log(f"job {job_id}: {_describe_metrics(data, hp.n_steps)}")
                events.flush()
                if heartbeat.beat() == "pause":  # between steps: extend the lease and obey the answer at once
                    command = "stop"
            elif kind == "eval":
                data = {k: v for k, v in event.items() if k != "type"}
                events.emit("eval", f"eval at step {data['step']}: pass@1 {data['pass_at_1']:.3f} on "
                            f"{data['n_prompts']} validation prompts", data)
                events.flush()
            elif kind == "checkpoint":
                events.flush()  # the events up to this checkpoint exist before it does (see module docstring)
                ckpt = upload_checkpoint(api, job_id, token, event, events.next_seq)
                log(f"job {job_id}: registered {ckpt['fine_tuned_model_checkpoint']}")
                shutil.rmtree(event["model_dir"], ignore_errors=True)  # uploaded; the state stays for a local resume
            elif kind == "stopped":
                return "paused"
            elif kind == "done":
                return _finish(api, job_id, token, events, event["step"])
            heartbeat.check()
    finally:
        run.close()


def _finish(api: WorkerApi, job_id: str, token: str, events: EventStream, step: int) -> str:
    events.emit("message", f"Training finished after {step} steps.", {"step": step})
    events.flush()
    job = api.finish(job_id, token)
    log(f"job {job_id}: succeeded: {job['fine_tuned_model']}")
    return "succeeded"


# ---- the loop --------------------------------------------------------------------------------------------------------
def run_worker(api: WorkerApi, heartbeat_api: WorkerApi, worker_id: str, work_root: Path, once: bool,
               poll_seconds: float, device: str, export_onnx: bool, models: list[str] | None = None,
               backend: str = "torch", rollout_engine: str = "plain") -> None:
    """Claim and run jobs until stopped (or one claim with `once`)."""
    while True:
        try:
            claim = api.claim(worker_id, models)
        except (ApiError, httpx.HTTPError) as err:
            log(f"claim failed: {err}; retrying in {poll_seconds} s")
            claim = None
            if once:
                raise
        if claim is not None:
            try:
                outcome = run_job(api, claim, work_root, device, export_onnx, heartbeat_api, backend, rollout_engine)
            except (ApiError, httpx.HTTPError) as err:  # the API was unreachable even for the fail call
                outcome = f"abandoned ({err}); the lease will expire and the job return to the queue"
            log(f"job {claim['job']['id']}: {outcome}")
        if once:
            return
        if claim is None:
            time.sleep(poll_seconds)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m softgrpo.worker", description=__doc__.split("\n")[0])
    ap.add_argument("--api", default=os.environ.get("API_URL", "http://127.0.0.1:8787"), help="API base URL")
    ap.add_argument("--token", default=os.environ.get("WORKER_TOKEN"), help="worker token (env WORKER_TOKEN)")
    ap.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--once", action="store_true", help="claim at most one job, run it, exit")
    ap.add_argument("--poll-seconds", type=float, default=2.0, help="wait between claims when the queue is empty")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--work-dir", default=None, help="downloads and local checkpoints (default: a temp folder)")
    ap.add_argument("--model", action="append", dest="models", help="only claim jobs on this base model (repeat)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--backend", choices=("torch", "triton"), default=None,
                    help="torch references or the Triton kernels (default: triton on CUDA, torch on CPU)")
    ap.add_argument("--rollout-engine", choices=("plain", "static"), default=None,
                    help="plain = softgrpo.rollout, static = softgrpo.gpu_engine (default: static on CUDA, plain on CPU)")
    ap.add_argument("--no-onnx", dest="onnx", action="store_false",
                    help="skip the ONNX export of checkpoints (they then cannot be served by the ONNX engine)")
    args = ap.parse_args(argv)
    if not args.token:
        ap.error("--token (or env WORKER_TOKEN) is required")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # SIGTERM (docker stop, the local stack's shutdown) exits like Ctrl-C; the lease then expires and the job resumes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work_root = Path(args.work_dir or Path(tempfile.gettempdir()) / "softgrpo-worker")
    device = args.device or default_device()
    backend, rollout_engine = compute_options(args.backend, args.rollout_engine, device)
    try:  # a worker that cannot run its kernels on this machine should not claim jobs at all
        check_engine_options(backend, rollout_engine, device)
    except ValueError as err:
        ap.error(str(err))
    api, heartbeat_api = WorkerApi(args.api, args.token), WorkerApi(args.api, args.token, retries=1)
    log(f"{args.worker_id} polling {args.api} on {device}, {backend} kernels, {rollout_engine} rollouts "
        f"(work dir {work_root})")
    try:
        run_worker(api, heartbeat_api, args.worker_id, work_root, args.once, args.poll_seconds, device, args.onnx,
                   args.models, backend, rollout_engine)
    except KeyboardInterrupt:
        log("stopped")
    finally:
        api.close()
        heartbeat_api.close()


if __name__ == "__main__":
    main()
