"""The hand-written types and routes of the Python SDK against openapi/openapi.json (the contract): every
TypedDict has exactly the schema's properties, the same required keys, compatible JSON types and the same enums;
every route the client calls exists in the spec with that method. A change of the API fails here until the SDK
follows it.

Run: gpu-worker/.venv/bin/python -m pytest sdk/python/tests   (from the repository root)
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import pytest

from soft_reason import ROUTES
from soft_reason.types import SPEC_SCHEMAS

SPEC = json.loads((Path(__file__).resolve().parents[3] / "openapi" / "openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
PY_TO_JSON = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null", list: "array", dict: "object"}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def spec_types(schema: dict) -> set[str]:
    schema = resolve(schema)
    if "anyOf" in schema or "oneOf" in schema:
        return set().union(*(spec_types(s) for s in schema.get("anyOf", schema.get("oneOf"))))
    t = schema.get("type")
    if t is None:
        return {"object"} if "properties" in schema else set()
    return set(t) if isinstance(t, list) else {t}


def py_types(ann) -> tuple[set[str], set]:
    """JSON types of an annotation and the literal values it allows (empty: any value of the type)."""
    origin = typing.get_origin(ann)
    if origin in (typing.Required, typing.NotRequired):
        return py_types(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        out, lits = set(), set()
        for a in typing.get_args(ann):
            t, l = py_types(a)
            out |= t
            lits |= l
        return out, lits
    if origin is typing.Literal:
        values = typing.get_args(ann)
        return {PY_TO_JSON[type(v)] for v in values}, set(values)
    if typing.is_typeddict(ann):
        return {"object"}, set()
    if ann is typing.Any:
        return set(), set()
    return {PY_TO_JSON[origin or ann]}, set()


@pytest.mark.parametrize("name", sorted(SPEC_SCHEMAS))
def test_typed_dict_matches_the_spec_schema(name: str) -> None:
    cls = SPEC_SCHEMAS[name]
    schema = resolve(SCHEMAS[name])
    props = schema["properties"]
    hints = typing.get_type_hints(cls, include_extras=True)
    assert set(hints) == set(props), f"{name}: fields differ from the spec: {set(hints) ^ set(props)}"
    assert set(cls.__required_keys__) == set(schema.get("required", [])), f"{name}: required keys differ"
    for field, ann in hints.items():
        expected = spec_types(props[field])
        got, literals = py_types(ann)
        if expected and got:
            # An integer field may be typed float in Python only where the spec says number; never the reverse.
            assert got == expected, f"{name}.{field}: Python {got} vs spec {expected}"
        enum = resolve(props[field]).get("enum")
        if enum is not None and literals:
            assert literals == {e for e in enum if e is not None}, f"{name}.{field}: enum {literals} vs spec {enum}"


def test_nested_typed_dicts_match_their_inline_schemas() -> None:
    """Inline objects (a job's error, a choice's usage, vote counts, checkpoint files) checked the same way."""
    from soft_reason import types as t

    cases = [
        (t.JobError, SCHEMAS["FineTuningJob"]["properties"]["error"]),
        (t.JobMethod, SCHEMAS["FineTuningJob"]["properties"]["method"]),
        (t.ReasonChoiceUsage, resolve(SCHEMAS["ReasonChoice"])["properties"]["usage"]),
        (t.VoteCount, SCHEMAS["ReasonAggregate"]["properties"]["distribution"]["items"]),
        (t.CheckpointFile, SCHEMAS["FineTuningJobCheckpoint"]["properties"]["files"]["items"]),
        (t.ErrorBody, SCHEMAS["Error"]["properties"]["error"]),
    ]
    for cls, schema in cases:
        assert set(typing.get_type_hints(cls)) == set(schema["properties"]), cls.__name__
        assert set(cls.__required_keys__) == set(schema["required"]), cls.__name__


@pytest.mark.parametrize("op", sorted(ROUTES))
def test_route_exists_in_the_spec(op: str) -> None:
    method, path = ROUTES[op]
    assert path in SPEC["paths"], f"{op}: {path} is not in openapi.json"
    assert method.lower() in SPEC["paths"][path], f"{op}: {method} {path} is not in openapi.json"
    params = {p["name"] for p in SPEC["paths"][path][method.lower()].get("parameters", []) if p["in"] == "path"}
    assert params == set(typing.cast(list, [seg[1:-1] for seg in path.split("/") if seg.startswith("{")])), op


def test_every_public_user_operation_is_covered_or_listed_as_not_wrapped() -> None:
    """New public routes must be wrapped by the SDK or named here on purpose."""
    not_wrapped = {
        ("GET", "/v1/files/{file_id}/content"),  # downloads: use the HTTP client directly
        ("GET", "/v1/models/{model}/files"),  # signed URLs of model files
        ("POST", "/v1/chat/completions"),  # the OpenAI-compatible view; use the openai package
        ("POST", "/v1/completions"),  # OpenAI's legacy completions; use the openai package
        ("GET", "/v1/api_keys"),  # key management: `npm run api-keys` or the HTTP client
        ("POST", "/v1/api_keys"),
        ("POST", "/v1/api_keys/{key_id}/revoke"),
        # tenant base models: `npm run import-model` + the signed-upload flow in docs/MODELS.md, or the HTTP client
        ("POST", "/v1/model_uploads"),
        ("GET", "/v1/model_uploads"),
        ("POST", "/v1/model_uploads/{model}/complete"),
        ("DELETE", "/v1/model_uploads/{model}"),
    }
    covered = set(ROUTES.values())
    for path, ops in SPEC["paths"].items():
        if not path.startswith("/v1/") or path.startswith("/v1/fine_tuning/"):
            continue
        for method in ops:
            key = (method.upper(), path)
            assert key in covered or key in not_wrapped, f"{key} is neither wrapped by the SDK nor listed as not wrapped"
