"""How a job ends badly: JobFailure carries the user-facing error the worker reports with `fail`."""
from __future__ import annotations

import httpx

from softgrpo.api_client import DownloadError


class JobFailure(Exception):
    """The job cannot go on: fail it with this user-facing error."""

    def __init__(self, code: str, message: str, param: str | None = None, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.param, self.retryable = code, message, param, retryable


def crash_failure(err: Exception) -> JobFailure:
    """A bug or a broken environment: tell the user what happened; retry only what may pass another time (the network,
    memory, a training process killed from outside)."""
    if isinstance(err, JobFailure):
        return err
    transient = isinstance(err, (httpx.HTTPError, DownloadError, MemoryError)) or "out of memory" in str(err)
    hint = " Try a smaller batch_size, group_size or max_response_tokens." if "out of memory" in str(err) else ""
    return JobFailure("training_error", f"The worker failed: {type(err).__name__}: {err}.{hint}", retryable=transient)
