"""The Python SDK: ``SoftReason``, a small synchronous client over httpx with the TypeScript SDK's surface.

    from soft_reason import SoftReason
    api = SoftReason()  # SOFT_REASON_API_KEY, SOFT_REASON_BASE_URL (default http://127.0.0.1:8787)
    print(api.reason({"model": "tiny-arith", "prompt": "What is 2+3?", "n": 8})["aggregate"])

Every call goes through ``ROUTES`` (HTTP method and path template per operation), which the tests check against
openapi/openapi.json. Failures raise SoftReasonError (status, error envelope, x-request-id). POSTs carry a fresh
Idempotency-Key unless one is given, and 429 / 503 / 409-with-retry-after are retried with the same key after
``retry-after`` seconds (or an exponential backoff).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Literal, cast

import httpx

from .errors import SoftReasonError, error_from_body, error_from_response
from .sse import iter_sse
from .types import (
    TERMINAL_STATUSES,
    CreateFineTuningJob,
    DeletedFile,
    File,
    FileList,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    Model,
    ModelList,
    ReasonRequest,
    ReasonResponse,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8787"

ROUTES: dict[str, tuple[str, str]] = {
    "reason": ("POST", "/v1/reason"),
    "upload_file": ("POST", "/v1/files"),
    "list_files": ("GET", "/v1/files"),
    "get_file": ("GET", "/v1/files/{file_id}"),
    "delete_file": ("DELETE", "/v1/files/{file_id}"),
    "create_job": ("POST", "/v1/finetune"),
    "list_jobs": ("GET", "/v1/finetune"),
    "get_job": ("GET", "/v1/finetune/{job_id}"),
    "cancel_job": ("POST", "/v1/finetune/{job_id}/cancel"),
    "pause_job": ("POST", "/v1/finetune/{job_id}/pause"),
    "resume_job": ("POST", "/v1/finetune/{job_id}/resume"),
    "events": ("GET", "/v1/finetune/{job_id}/events"),
    "checkpoints": ("GET", "/v1/finetune/{job_id}/checkpoints"),
    "list_models": ("GET", "/v1/models"),
    "get_model": ("GET", "/v1/models/{model}"),
}

_RETRYABLE = {429, 503}


def retry_after_seconds(value: str | None) -> float | None:
    """retry-after as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class SoftReason:
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 2,
        max_retry_delay: float = 30.0,
        base_delay: float = 0.5,
        idempotency_keys: bool = True,
        timeout: float = 600.0,
        headers: dict[str, str] | None = None,
        http: httpx.Client | None = None,
    ):
        api_key = api_key or os.environ.get("SOFT_REASON_API_KEY")
        self.base_url = (base_url or os.environ.get("SOFT_REASON_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.max_retries, self.max_retry_delay, self.base_delay = max_retries, max_retry_delay, base_delay
        self.idempotency_keys = idempotency_keys
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.Client(timeout=timeout)
        self._headers = {**auth, **(headers or {})}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SoftReason":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- transport ----

    def _send(self, op: str, path_params: dict[str, str] | None = None, *, stream: bool = False,
              idempotency_key: str | None = None, **kwargs: Any) -> httpx.Response:
        method, template = ROUTES[op]
        url = self.base_url + template.format(**{k: _quote(v) for k, v in (path_params or {}).items()})
        headers = dict(self._headers)
        if method == "POST" and (idempotency_key or self.idempotency_keys):
            headers["idempotency-key"] = idempotency_key or f"sdk-py-{uuid.uuid4()}"
        for attempt in range(self.max_retries + 1):
            request = self._http.build_request(method, url, headers=headers, **kwargs)
            res = self._http.send(request, stream=stream)
            retryable = res.status_code in _RETRYABLE or (res.status_code == 409 and "retry-after" in res.headers)
            if attempt == self.max_retries or not retryable:
                break
            wait = retry_after_seconds(res.headers.get("retry-after"))
            wait = self.base_delay * 2**attempt if wait is None else wait
            if wait > self.max_retry_delay:
                break
            res.close()
            time.sleep(wait)
        if not res.is_success:
            if stream:
                res.read()
            raise error_from_response(res)
        return res

    def _json(self, op: str, path_params: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self._send(op, path_params, **kwargs).json()

    # ---- reasoning ----

    def reason(self, body: ReasonRequest, *, idempotency_key: str | None = None) -> ReasonResponse:
        return self._json("reason", json={**body, "stream": False}, idempotency_key=idempotency_key)

    def reason_stream(self, body: ReasonRequest, *, idempotency_key: str | None = None) -> Iterator[dict[str, Any]]:
        """Yields each ``reason.chunk`` and finally the ``reason.vote`` chunk (see docs/SDK.md)."""
        res = self._send("reason", json={**body, "stream": True}, stream=True, idempotency_key=idempotency_key)
        request_id = res.headers.get("x-request-id")
        try:
            for m in iter_sse(res.iter_lines()):
                if m.data == "[DONE]":
                    return
                payload = json.loads(m.data)
                if "error" in payload:
                    raise error_from_body(500, payload, request_id)
                yield payload
            raise SoftReasonError(502, {"message": "The reasoning stream ended before [DONE].", "type": "stream_error", "param": None, "code": "stream_truncated"}, request_id)
        finally:
            res.close()

    # ---- files ----

    def upload_file(self, source: str | os.PathLike[str] | bytes | IO[bytes], *, filename: str | None = None,
                    idempotency_key: str | None = None) -> File:
        """Uploads a JSONL dataset from a path, bytes or a binary file object (streamed from disk for a path)."""
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            with path.open("rb") as f:
                return self._json("upload_file", data={"purpose": "fine-tune"},
                                  files={"file": (filename or path.name, f, "application/jsonl")}, idempotency_key=idempotency_key)
        return self._json("upload_file", data={"purpose": "fine-tune"},
                          files={"file": (filename or "train.jsonl", source, "application/jsonl")}, idempotency_key=idempotency_key)

    def list_files(self, *, after: str | None = None, limit: int | None = None) -> FileList:
        return self._json("list_files", params=_query(after=after, limit=limit))

    def get_file(self, file_id: str) -> File:
        return self._json("get_file", {"file_id": file_id})

    def delete_file(self, file_id: str) -> DeletedFile:
        return self._json("delete_file", {"file_id": file_id})

    # ---- fine-tuning ----

    def create_job(self, body: CreateFineTuningJob, *, idempotency_key: str | None = None) -> FineTuningJob:
        return self._json("create_job", json=body, idempotency_key=idempotency_key)

    def list_jobs(self, *, after: str | None = None, limit: int | None = None) -> FineTuningJobList:
        return self._json("list_jobs", params=_query(after=after, limit=limit))

    def get_job(self, job_id: str) -> FineTuningJob:
        return self._json("get_job", {"job_id": job_id})

    def cancel_job(self, job_id: str, *, idempotency_key: str | None = None) -> FineTuningJob:
        return self._json("cancel_job", {"job_id": job_id}, idempotency_key=idempotency_key)

    def pause_job(self, job_id: str, *, idempotency_key: str | None = None) -> FineTuningJob:
        return self._json("pause_job", {"job_id": job_id}, idempotency_key=idempotency_key)

    def resume_job(self, job_id: str, *, idempotency_key: str | None = None) -> FineTuningJob:
        return self._json("resume_job", {"job_id": job_id}, idempotency_key=idempotency_key)

    def checkpoints(self, job_id: str, *, after: str | None = None, limit: int | None = None) -> FineTuningJobCheckpointList:
        return self._json("checkpoints", {"job_id": job_id}, params=_query(after=after, limit=limit))

    def events(self, job_id: str, *, after: str | None = None, limit: int | None = None,
               order: Literal["asc", "desc"] | None = None) -> FineTuningJobEventList:
        """One page of a job's events: newest first (as OpenAI), or oldest first with order="asc"; `after` pages
        on in that order."""
        return self._json("events", {"job_id": job_id}, params=_query(after=after, limit=limit, order=order))

    def stream_events(self, job_id: str, *, after: str | None = None) -> Iterator[FineTuningJobEvent]:
        """Follows a job's events until it has finished and every event was delivered; reconnects from the last
        event id when the server closes a long stream."""
        while True:
            res = self._send("events", {"job_id": job_id}, stream=True, params=_query(after=after, stream="true"))
            try:
                for m in iter_sse(res.iter_lines()):
                    if m.event == "done":
                        return
                    if m.event != "event":
                        continue
                    event = cast(FineTuningJobEvent, json.loads(m.data))
                    after = m.id or event["id"]
                    yield event
            finally:
                res.close()
            time.sleep(0.25)

    def wait_for_job(self, job_id: str, *, poll: float = 2.0, timeout: float | None = None,
                     on_status: Callable[[FineTuningJob], None] | None = None) -> FineTuningJob:
        """Polls until the job succeeded, failed or was cancelled and returns it (it does not raise on failure)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.get_job(job_id)
            if job["status"] != last and on_status:
                on_status(job)
            last = job["status"]
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"wait_for_job: {job_id} is still {job['status']} after {timeout} s")
            time.sleep(poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic())))

    # ---- models ----

    def list_models(self) -> ModelList:
        return self._json("list_models")

    def get_model(self, model: str) -> Model:
        return self._json("get_model", {"model": model})


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
