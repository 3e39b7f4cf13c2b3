"""Thin typed client for the worker protocol (/internal routes of the API; docs/CONTRACTS.md "Worker protocol").

    client = WorkerApi("http://127.0.0.1:8787", token=os.environ["WORKER_TOKEN"])
    claim = client.claim("worker-1")            # None when the queue is empty

Every route the worker uses is declared once in ROUTES (method, path, the request fields it sends and the response
fields it reads); tests/test_worker_api_client.py checks that table against openapi/openapi.json, so the client
cannot drift from the API. Signed blob URLs (downloads, checkpoint uploads) need no token: the URL is the credential.

Transient failures (connection errors, 5xx, 429) are retried with backoff; every POST carries an Idempotency-Key,
so a retried call whose first answer was lost replays that answer instead of acting twice, and a 409
`idempotency_request_in_progress` (the first try is still reserved) is waited out as its retry-after says. Checkpoint
blobs are write-once: a retried PUT whose first try landed answers 409 `blob_exists`, which counts as uploaded
(registration then checks every file's size and sha256).
"""
from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TypedDict

import httpx

from softgrpo.hashing import CHUNK_BYTES, sha256_file, write_hashing


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI path template
    sends: tuple[str, ...]  # request body fields the client may send
    reads: tuple[str, ...]  # response fields (dotted; `[]` = every item of a list) the worker reads


ROUTES: dict[str, Route] = {
    "claim": Route("post", "/internal/jobs/claim", ("worker_id", "models", "devices"), (
        "job.id", "job.model", "job.method.type", "job.method.hyperparameters", "job.grader", "job.seed",
        "job.fine_tuned_model", "lease.token", "lease.seconds", "attempt", "max_attempts", "next_event_seq",
        "training_file.url", "training_file.sha256", "training_file.bytes", "validation_file.url",
        "base_model.id", "base_model.manifest", "base_model.files[].name", "base_model.files[].url",
        "base_model.files[].sha256", "base_model.files[].bytes", "resume_from.step", "resume_from.checkpoint_id",
        "resume_from.files[].name", "resume_from.files[].url", "resume_from.files[].sha256")),
    "heartbeat": Route("post", "/internal/jobs/{job_id}/heartbeat", ("lease_token", "trained_steps"),
                       ("action", "status", "lease_expires_at")),
    "events": Route("post", "/internal/jobs/{job_id}/events", ("lease_token", "events"), ("accepted", "duplicates")),
    "upload_urls": Route("post", "/internal/jobs/{job_id}/checkpoints/uploads", ("lease_token", "step", "files"),
                         ("files[].name", "files[].url", "files[].method")),
    "register_checkpoint": Route("post", "/internal/jobs/{job_id}/checkpoints",
                                 ("lease_token", "step", "files", "metrics"), ("id", "step_number", "fine_tuned_model_checkpoint")),
    "pause": Route("post", "/internal/jobs/{job_id}/pause", ("lease_token",), ("status",)),
    "finish": Route("post", "/internal/jobs/{job_id}/finish", ("lease_token",), ("status", "fine_tuned_model")),
    "fail": Route("post", "/internal/jobs/{job_id}/fail", ("lease_token", "error", "retryable"), ("status",)),
}
EVENT_FIELDS = ("seq", "level", "type", "message", "data")  # one entry of events[]
FILE_SPEC_FIELDS = ("name", "bytes", "sha256")  # one entry of files[] in upload_urls / register_checkpoint
FAIL_ERROR_FIELDS = ("code", "message", "param")


class SignedFile(TypedDict):
    name: str
    bytes: int
    sha256: str
    url: str


class Claim(TypedDict):
    job: dict[str, Any]
    lease: dict[str, Any]
    attempt: int
    max_attempts: int
    next_event_seq: int
    urls_expire_at: int
    training_file: SignedFile
    validation_file: SignedFile | None
    base_model: dict[str, Any]
    resume_from: dict[str, Any] | None


class ApiError(Exception):
    """A 4xx/5xx answer: status, and the error envelope's code / message / param."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(f"HTTP {status} {code or ''}: {message}".replace("  ", " "))
        self.status, self.code, self.message, self.param = status, code, message, param


class LeaseLost(ApiError):
    """409 lease_lost: the job went back to the queue (or to another worker); stop working on it at once."""


class DownloadError(Exception):
    """A signed download failed or its bytes do not match the declared size / sha256."""


RETRY_STATUSES = {429, 500, 502, 503, 504}


class WorkerApi:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0, retries: int = 5, backoff: float = 0.5,
                 in_progress_wait: float = 180.0):
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff, self.in_progress_wait = retries, backoff, in_progress_wait
        self.http = httpx.Client(timeout=timeout, headers={"authorization": f"Bearer {token}"})
        self.blobs = httpx.Client(timeout=timeout)  # signed URLs carry their own credential

    def close(self) -> None:
        self.http.close()
        self.blobs.close()

    # ---- the protocol ------------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, models: list[str] | None = None, devices: int = 1) -> Claim | None:
        """The next job this worker can run (on `models`, if given; needing at most `devices` devices), or None."""
        body: dict[str, Any] = {"worker_id": worker_id}
        if models:
            body["models"] = models
        if devices > 1:  # 1 is the API's default: an older API without the field still answers a 1-device worker
            body["devices"] = devices
        return self._post("claim", {}, body, idempotent=False)

    def heartbeat(self, job_id: str, lease_token: str, trained_steps: int | None = None) -> dict:
        body: dict[str, Any] = {"lease_token": lease_token}
        if trained_steps is not None:
            body["trained_steps"] = trained_steps
        return self._post("heartbeat", {"job_id": job_id}, body)

    def append_events(self, job_id: str, lease_token: str, events: list[dict]) -> dict:
        for event in events:
            unknown = set(event) - set(EVENT_FIELDS)
            assert not unknown, f"event fields {unknown} are not in the protocol"
        return self._post("events", {"job_id": job_id}, {"lease_token": lease_token, "events": events})

    def upload_urls(self, job_id: str, lease_token: str, step: int, files: list[dict]) -> dict:
        return self._post("upload_urls", {"job_id": job_id},
                          {"lease_token": lease_token, "step": step, "files": [_file_spec(f) for f in files]})

    def register_checkpoint(self, job_id: str, lease_token: str, step: int, files: list[dict],
                            metrics: dict[str, float]) -> dict:
        return self._post("register_checkpoint", {"job_id": job_id}, {
            "lease_token": lease_token, "step": step, "files": [_file_spec(f) for f in files], "metrics": metrics})

    def ack_pause(self, job_id: str, lease_token: str) -> dict:
        return self._post("pause", {"job_id": job_id}, {"lease_token": lease_token})

    def finish(self, job_id: str, lease_token: str) -> dict:
        return self._post("finish", {"job_id": job_id}, {"lease_token": lease_token})

    def fail(self, job_id: str, lease_token: str, code: str, message: str, param: str | None = None,
             retryable: bool = False) -> dict:
        error = {"code": code, "message": message[:2000]}
        if param:
            error["param"] = param[:128]
        return self._post("fail", {"job_id": job_id},
                          {"lease_token": lease_token, "error": error, "retryable": retryable})

    # ---- signed blob transfer ----------------------------------------------------------------------------------------
    def download(self, file: SignedFile, dest: str | Path) -> Path:
        """GET a signed URL into dest (streamed), verifying its size and sha256."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        size, sha256 = 0, ""
        for attempt in self._attempts():
            try:
                with self.blobs.stream("GET", file["url"]) as response, open(dest, "wb") as out:
                    if response.status_code in RETRY_STATUSES and attempt < self.retries:
                        continue
                    if response.status_code != 200:
                        raise DownloadError(f"download of {file['name']} answered HTTP {response.status_code}")
                    size, sha256 = write_hashing(response.iter_bytes(CHUNK_BYTES), out)
                break
            except httpx.TransportError as err:
                if attempt >= self.retries:
                    raise DownloadError(f"download of {file['name']} failed: {err}") from err
        if size != file["bytes"] or sha256 != file["sha256"]:
            raise DownloadError(f"download of {file['name']} has {size} bytes / sha256 {sha256}, "
                                f"expected {file['bytes']} / {file['sha256']}")
        return dest

    def put_blob(self, url: str, path: str | Path) -> dict:
        """PUT a file's bytes to a signed URL (streamed); returns the store's answer ({key, bytes, sha256} from the
        API's /blobs, {} from R2/S3), or {"exists": True} when the key was already written (an earlier try of this
        upload that landed). The file's SHA-256 goes along as x-amz-checksum-sha256 / x-amz-meta-sha256: upload URLs
        are signed with it (src/adapters/signed-urls.ts checksumHeaders), and the store refuses other content."""
        sha256 = sha256_file(path)
        checksum = {"x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode(), "x-amz-meta-sha256": sha256}
        for attempt in self._attempts():
            try:
                with open(path, "rb") as body:
                    response = self.blobs.put(url, content=_chunks(body),
                                              headers={"content-length": str(Path(path).stat().st_size), **checksum})
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                continue
            if _error_code(response) == "blob_exists":
                return {"exists": True}
            _raise_for_error(response)
            return response.json() if "json" in response.headers.get("content-type", "") else {}
        raise AssertionError("unreachable")

    # ---- plumbing ----------------------------------------------------------------------------------------------------
    def _attempts(self) -> Iterator[int]:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 10.0))
            yield attempt

    def _post(self, route_name: str, path_params: dict, body: dict, idempotent: bool = True) -> Any:
        route = ROUTES[route_name]
        unknown = set(body) - set(route.sends)
        assert not unknown, f"{route_name}: fields {unknown} are not declared in ROUTES"
        url = self.base_url + route.path.format(**path_params)
        # claim is not idempotent by design (a replayed claim would hand out a stale lease): no key, no retry on 5xx
        headers = {"idempotency-key": str(uuid.uuid4())} if idempotent else {}
        # 409 idempotency_request_in_progress: our own earlier try of this call is still reserved (the API died in
        # the middle of it, or is still running it). The API releases such reservations at start-up and by age, so
        # it is transient: wait as retry-after says, up to in_progress_wait seconds, apart from the retry count.
        in_progress_until = time.monotonic() + self.in_progress_wait
        attempt = 0
        while True:
            try:
                response = self.http.request(route.method.upper(), url, json=body, headers=headers)
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
                attempt += 1
                self._sleep_before(attempt)
                continue
            if idempotent and _error_code(response) == "idempotency_request_in_progress" \
                    and time.monotonic() < in_progress_until:
                time.sleep(_retry_after(response, default=1.0))
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries and idempotent:
                attempt += 1
                self._sleep_before(attempt, _retry_after(response, default=0.0))
                continue
            break
        if response.status_code == 204:
            return None
        _raise_for_error(response)
        return response.json()

    def _sleep_before(self, attempt: int, at_least: float = 0.0) -> None:
        time.sleep(max(at_least, min(self.backoff * 2 ** (attempt - 1), 10.0)))


def _error_code(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        return (response.json().get("error") or {}).get("code")
    except ValueError:
        return None


def _retry_after(response: httpx.Response, default: float) -> float:
    """The retry-after header in seconds (capped at 30), or default."""
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), 30.0)
    except ValueError:
        return default


def _chunks(body, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := body.read(size):
        yield chunk


def _file_spec(f: dict) -> dict:
    return {name: f[name] for name in FILE_SPEC_FIELDS}


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = error.get("message") or response.text[:500] or response.reason_phrase
    kind = LeaseLost if response.status_code == 409 and error.get("code") == "lease_lost" else ApiError
    raise kind(response.status_code, message, error.get("code"), error.get("param"))
