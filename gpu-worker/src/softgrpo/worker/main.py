"""The worker's loop and command line: claim a job this machine can run, run it, repeat.

    gpu-worker/.venv/bin/python -m softgrpo.worker --api http://127.0.0.1:8787 --token "$WORKER_TOKEN" \\
        [--once] [--poll-seconds 2] [--device cpu|cuda] [--devices N] [--work-dir DIR] [--no-onnx]

The claim says how many devices this worker has (--devices; default: every visible GPU on CUDA, 1 on CPU), and the
API hands out only jobs whose resources.devices fit. One job at a time (worker.job_run), on one device in this
process or under torchrun on more (worker.launcher).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from softgrpo.api_client import ApiError, WorkerApi
from softgrpo.config import check_engine_options
from softgrpo.worker.job_run import WorkerOptions, compute_options, run_job
from softgrpo.worker.lease import log


def run_worker(api: WorkerApi, heartbeat_api: WorkerApi, worker_id: str, work_root: Path, once: bool,
               poll_seconds: float, device: str, export_onnx: bool, models: list[str] | None = None,
               backend: str = "torch", rollout_engine: str = "plain", devices: int = 1,
               threads: int | None = None, bf16: bool = False, gradient_checkpointing: bool = False) -> None:
    """Claim and run jobs until stopped (or one claim with `once`)."""
    options = WorkerOptions(device=device, devices=devices, export_onnx=export_onnx, backend=backend,
                            rollout_engine=rollout_engine, threads=threads, bf16=bf16,
                            gradient_checkpointing=gradient_checkpointing)
    while True:
        try:
            claim = api.claim(worker_id, models, devices=devices)
        except (ApiError, httpx.HTTPError) as err:
            log(f"claim failed: {err}; retrying in {poll_seconds} s")
            claim = None
            if once:
                raise
        if claim is not None:
            try:
                outcome = run_job(api, claim, work_root, options, heartbeat_api)
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


def default_devices(device: str) -> int:
    """Every visible GPU on CUDA; one on CPU (more CPU ranks are for tests: pass --devices)."""
    if device.startswith("cuda"):
        import torch

        return max(1, torch.cuda.device_count())
    return 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m softgrpo.worker", description="The GPU worker: pulls fine-tuning "
                                 "jobs from the API and runs them (docs/WORKER.md).")
    ap.add_argument("--api", default=os.environ.get("API_URL", "http://127.0.0.1:8787"), help="API base URL")
    ap.add_argument("--token", default=os.environ.get("WORKER_TOKEN"), help="worker token (env WORKER_TOKEN)")
    ap.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--once", action="store_true", help="claim at most one job, run it, exit")
    ap.add_argument("--poll-seconds", type=float, default=2.0, help="wait between claims when the queue is empty")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--devices", type=int, default=None,
                    help="devices this worker offers a job (default: every visible GPU on CUDA, 1 on CPU); a job "
                         "with resources.devices > 1 runs under torchrun, one rank per device")
    ap.add_argument("--work-dir", default=None, help="downloads and local checkpoints (default: a temp folder)")
    ap.add_argument("--model", action="append", dest="models", help="only claim jobs on this base model (repeat)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (per rank under torchrun)")
    ap.add_argument("--backend", choices=("torch", "triton"), default=None,
                    help="torch references or the Triton kernels (default: triton on CUDA, torch on CPU)")
    ap.add_argument("--rollout-engine", choices=("plain", "static"), default=None,
                    help="plain = softgrpo.rollout, static = softgrpo.gpu_engine "
                         "(default: static on CUDA, plain on CPU)")
    ap.add_argument("--no-onnx", dest="onnx", action="store_false",
                    help="skip the ONNX export of checkpoints (they then cannot be served by the ONNX engine)")
    ap.add_argument("--bf16", action="store_true",
                    help="train with bfloat16 autocast (float32 weights and optimizer state); meant for GPUs")
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="recompute decoder layers in the backward pass (less activation memory, ~1/3 more compute)")
    args = ap.parse_args(argv)
    if not args.token:
        ap.error("--token (or env WORKER_TOKEN) is required")
    if args.devices is not None and args.devices < 1:
        ap.error("--devices must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # SIGTERM (docker stop, the local stack's shutdown) exits like Ctrl-C; the lease then expires and the job resumes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work_root = Path(args.work_dir or Path(tempfile.gettempdir()) / "softgrpo-worker")
    device = args.device or default_device()
    devices = args.devices or default_devices(device)
    backend, rollout_engine = compute_options(args.backend, args.rollout_engine, device)
    try:  # a worker that cannot run its kernels on this machine should not claim jobs at all
        check_engine_options(backend, rollout_engine, device)
    except ValueError as err:
        ap.error(str(err))
    api, heartbeat_api = WorkerApi(args.api, args.token), WorkerApi(args.api, args.token, retries=1)
    log(f"{args.worker_id} polling {args.api} on {devices} x {device}, {backend} kernels, {rollout_engine} rollouts "
        f"(work dir {work_root})")
    try:
        run_worker(api, heartbeat_api, args.worker_id, work_root, args.once, args.poll_seconds, device, args.onnx,
                   args.models, backend, rollout_engine, devices=devices, threads=args.threads, bf16=args.bf16,
                   gradient_checkpointing=args.gradient_checkpointing)
    except KeyboardInterrupt:
        log("stopped")
    finally:
        api.close()
        heartbeat_api.close()
