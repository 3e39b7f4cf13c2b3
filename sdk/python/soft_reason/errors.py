"""The API's error envelope ``{"error": {message, type, param, code}}`` as an exception, with the HTTP status and
the response's ``x-request-id`` (quote it when reporting a problem)."""

from __future__ import annotations

import json
from typing import Any

import httpx


class SoftReasonError(Exception):
    def __init__(self, status: int, error: dict[str, Any], request_id: str | None):
        self.status = status
        self.error = error
        self.request_id = request_id
        parts = [f"HTTP {status}"] + ([error["code"]] if error.get("code") else []) + ([f"request {request_id}"] if request_id else [])
        super().__init__(f"{error.get('message')} ({', '.join(parts)})")

    @property
    def message(self) -> str:
        return self.error["message"]

    @property
    def type(self) -> str:
        return self.error["type"]

    @property
    def code(self) -> str | None:
        return self.error.get("code")

    @property
    def param(self) -> str | None:
        return self.error.get("param")


def error_from_body(status: int, body: Any, request_id: str | None) -> SoftReasonError:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return SoftReasonError(
            status,
            {"message": err["message"], "type": err.get("type", "api_error"), "param": err.get("param"), "code": err.get("code")},
            request_id,
        )
    # Not the API's envelope (a proxy's page, an empty body): keep a short excerpt.
    text = body if isinstance(body, str) else json.dumps(body)
    return SoftReasonError(status, {"message": f"HTTP {status}: {text[:300] or 'no body'}", "type": "http_error", "param": None, "code": None}, request_id)


def error_from_response(res: httpx.Response) -> SoftReasonError:
    try:
        body: Any = res.json()
    except ValueError:
        body = res.text
    return error_from_body(res.status_code, body, res.headers.get("x-request-id"))
