"""Files in and out of a job through signed URLs: the datasets (every line validated), the base model folder (kept
across jobs), a checkpoint to resume from, and each new checkpoint (servable model folder + training state +
worker_state.json), uploaded and registered."""
from __future__ import annotations

import json
from pathlib import Path

from softgrpo.api_client import DownloadError, WorkerApi
from softgrpo.checkpoint import blob_name, state_files
from softgrpo.data import DatasetError, parse_jsonl_lines
from softgrpo.model_folder import sha256_file
from softgrpo.worker.failures import JobFailure

WORKER_STATE = "worker_state.json"


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
    (<out>/checkpoints/step-NNNNNN/state/, subfolders included); returns its worker_state.json."""
    by_name = {f["name"]: f for f in resume["files"]}
    if WORKER_STATE not in by_name:
        raise JobFailure("checkpoint_unusable", f"checkpoint {resume['checkpoint_id']} has no {WORKER_STATE}; "
                         "it was not written by this worker and cannot be resumed", "resume_from")
    folder = out_dir / "checkpoints" / f"step-{resume['step']:06d}"
    api.download(by_name[WORKER_STATE], folder / WORKER_STATE)
    state = json.loads((folder / WORKER_STATE).read_text())
    for relative in state["state_files"]:
        api.download(by_name[blob_name(relative)], folder / "state" / relative)
    return state


def upload_checkpoint(api: WorkerApi, job_id: str, lease_token: str, event: dict, next_seq: int) -> dict:
    """Upload a checkpoint's model folder + training state (+ worker_state.json) and register it. State files in
    subfolders (the torch.distributed.checkpoint shards, state/dcp/) go up under flat names (checkpoint.blob_name);
    worker_state.json lists their relative paths, so a resume puts them back where they were."""
    model_dir, state_dir = Path(event["model_dir"]), Path(event["state_dir"])
    model_files = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    relative_state = state_files(state_dir)
    uploads = [(name, model_dir / name) for name in model_files]
    uploads += [(blob_name(rel), state_dir / rel) for rel in relative_state]
    names = [name for name, _ in uploads] + [WORKER_STATE]
    if len(set(names)) != len(names):
        raise RuntimeError(f"checkpoint file names clash between model and state folders: {sorted(names)}")
    worker_state = state_dir.parent / WORKER_STATE
    worker_state.write_text(json.dumps({"step": event["step"], "next_event_seq": next_seq,
                                        "model_files": model_files, "state_files": relative_state}, indent=2) + "\n")
    uploads.append((WORKER_STATE, worker_state))
    files = [{"name": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)} for name, path in uploads]
    urls = api.upload_urls(job_id, lease_token, event["step"], files)
    by_name = {u["name"]: u["url"] for u in urls["files"]}
    for name, path in uploads:
        api.put_blob(by_name[name], path)
    metrics = {k: float(v) for k, v in event["metrics"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}
    return api.register_checkpoint(job_id, lease_token, event["step"], files, metrics)
