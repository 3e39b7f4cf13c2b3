"""Schema-driven fuzzing of the Node API against its own OpenAPI document (openapi/openapi.json).

schemathesis generates requests from the document for every operation, valid ones (positive) and ones that
break it (negative), sends them to the real Node server (conftest.py) with a valid bearer key, and checks each
response: never a 5xx, a status code the document declares for the operation, the declared content type, and a
body that validates against the declared schema.

Bounded and reproducible: MAX_EXAMPLES cases per operation, hypothesis derandomized (a fixed seed per test), no
example database; inference requests are capped to a few short samples (`_bound_inference_cost`) so that a real
model behind /v1/reason cannot make one case cost minutes. About 3 minutes on two busy cores.

Run: gpu-worker/.venv/bin/python -m pytest tests/fuzz   (`npm run test:fuzz`; FUZZ_MAX_EXAMPLES overrides)
"""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.json"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# Raw JSONL uploads (POST /v1/files with a JSONL media type) are bytes on the wire, like application/octet-stream.
schemathesis.serializer.alias(["application/jsonl", "application/x-ndjson", "application/json-lines"], "application/octet-stream")

# /internal is the gpu-worker protocol, reached only with the worker token: it is fuzzed too, with that token,
# as a separate test, so that a failure there is told apart from one on the user-facing API.
INTERNAL = r"^/internal/"


def _load(modes: list[GenerationMode]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_path(SPEC)
    schema.config.generation.update(modes=modes, max_examples=MAX_EXAMPLES, deterministic=True)
    return schema


fuzzed = _load([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
public = fuzzed.exclude(path_regex=INTERNAL)
internal = fuzzed.include(path_regex=INTERNAL)
# Operations with a path parameter, fuzzed a second time with the ids of real resources substituted in.
with_ids = _load([GenerationMode.POSITIVE]).exclude(path_regex=INTERNAL).include(path_regex=r"\{")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INFERENCE_PATHS = {"/v1/reason", "/v1/chat/completions", "/v1/completions"}
MAX_FUZZ_SAMPLES = 2
MAX_FUZZ_TOKENS = 16


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bound_inference_cost(case) -> None:
    """Keeps generated inference requests cheap: at most MAX_FUZZ_SAMPLES samples of MAX_FUZZ_TOKENS tokens (a
    missing max_tokens, which means "the rest of the context", is set to the cap). Only values above a cap change,
    so a valid body stays valid; the validation of larger values is left to the route tests."""
    if case.path not in INFERENCE_PATHS or not isinstance(case.body, dict):
        return
    body = case.body
    if _is_int(body.get("n")) and body["n"] > MAX_FUZZ_SAMPLES:
        body["n"] = MAX_FUZZ_SAMPLES
    for name in ("max_tokens", "max_completion_tokens"):
        if _is_int(body.get(name)) and body[name] > MAX_FUZZ_TOKENS:
            body[name] = MAX_FUZZ_TOKENS
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = MAX_FUZZ_TOKENS


@public.parametrize()
@FUZZ_SETTINGS
def test_public_route_conforms_to_openapi(case, server):
    _bound_inference_cost(case)
    case.call_and_validate(base_url=server.base_url, headers=_bearer(server.api_key), checks=CHECKS, timeout=60)


@internal.parametrize()
@FUZZ_SETTINGS
def test_internal_route_conforms_to_openapi(case, server):
    case.call_and_validate(base_url=server.base_url, headers=_bearer(server.worker_token), checks=CHECKS, timeout=60)


def _real_id(path: str, name: str, ids: dict[str, str]) -> str | None:
    """The id of a seeded resource for path parameter `name` of `path`, or None to keep the generated value."""
    if path.startswith("/v1/files/"):
        return ids["file_id"]
    if path.startswith("/v1/finetune/") or path.startswith("/v1/fine_tuning/jobs/"):
        return ids["ended_job_id"] if path.endswith("/events") else ids["job_id"]
    if path.startswith("/v1/models/"):
        return ids["model"]
    return None


@with_ids.parametrize()
@FUZZ_SETTINGS
def test_route_on_existing_resource_conforms_to_openapi(case, server):
    for name in list(case.path_parameters or {}):
        real = _real_id(case.path, name, server.ids)
        if real is not None:
            case.path_parameters[name] = real
    _bound_inference_cost(case)
    case.call_and_validate(base_url=server.base_url, headers=_bearer(server.api_key), checks=CHECKS, timeout=60)
