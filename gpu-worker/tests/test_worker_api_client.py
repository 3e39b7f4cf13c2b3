"""The worker's API client against the committed OpenAPI document: every route, request field and response field
the client uses must exist there (so the client cannot drift from the API).

    cd gpu-worker && .venv/bin/python -m pytest tests/test_worker_api_client.py
"""
import json
import re
from pathlib import Path

import pytest

from softgrpo.api_client import EVENT_FIELDS, FAIL_ERROR_FIELDS, FILE_SPEC_FIELDS, ROUTES

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())


def schema_ref_parts(ref: str) -> list[str]:
    assert ref.startswith("#/"), ref
    return ref[2:].split("/")


def deref(schema: dict) -> dict:
    """Follow $ref chains and flatten allOf (used for nullable refs) into one dict of properties / items."""
    while "$ref" in schema:
        target = OPENAPI
        for part in schema_ref_parts(schema["$ref"]):
            target = target[part]
        schema = target
    if "allOf" in schema:
        merged: dict = {"properties": {}, "required": []}
        for part in schema["allOf"]:
            part = deref(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
            if "items" in part:
                merged["items"] = part["items"]
        return merged
    return schema


def field_schema(schema: dict, dotted: str) -> dict:
    """The schema of a dotted field path (`a.b[].c`) inside schema; fails the test when a segment is missing."""
    for segment in dotted.split("."):
        is_list = segment.endswith("[]")
        name = segment[:-2] if is_list else segment
        props = deref(schema).get("properties", {})
        assert name in props, f"{dotted}: '{name}' is not a property (has {sorted(props)})"
        schema = deref(props[name])
        if is_list:
            assert "items" in schema, f"{dotted}: '{name}' is not an array"
            schema = deref(schema["items"])
    return schema


def operation(route):
    paths = OPENAPI["paths"]
    assert route.path in paths, f"{route.path} is not in openapi.json"
    assert route.method in paths[route.path], f"{route.method.upper()} {route.path} is not in openapi.json"
    return paths[route.path][route.method]


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_client_route_matches_openapi(name):
    route = ROUTES[name]
    op = operation(route)
    assert "Worker protocol" in op.get("tags", []), f"{route.path} is not a worker-protocol route"
    params = re.findall(r"{(\w+)}", route.path)
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert set(params) == declared

    body = deref(op["requestBody"]["content"]["application/json"]["schema"])
    sends = set(route.sends)
    assert sends <= set(body["properties"]), f"{name}: sends {sends - set(body['properties'])} unknown to the API"
    assert set(body.get("required", [])) <= sends, f"{name}: never sends required {set(body['required']) - sends}"

    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    for dotted in route.reads:
        field_schema(ok, dotted)


def test_nested_request_items_match_openapi():
    events = deref(operation(ROUTES["events"])["requestBody"]["content"]["application/json"]["schema"])
    event = field_schema(events, "events[]")
    assert set(EVENT_FIELDS) == set(event["properties"])
    for name in ("upload_urls", "register_checkpoint"):
        body = deref(operation(ROUTES[name])["requestBody"]["content"]["application/json"]["schema"])
        spec = field_schema(body, "files[]")
        assert set(FILE_SPEC_FIELDS) == set(spec["properties"]) == set(spec["required"])
    fail = deref(operation(ROUTES["fail"])["requestBody"]["content"]["application/json"]["schema"])
    assert set(FAIL_ERROR_FIELDS) == set(field_schema(fail, "error")["properties"])


def test_every_worker_protocol_route_is_covered_by_the_client():
    ours = {(r.method, r.path) for r in ROUTES.values()}
    theirs = {(m, p) for p, ops in OPENAPI["paths"].items() for m, op in ops.items()
              if "Worker protocol" in op.get("tags", [])}
    assert theirs == ours


def test_claim_without_a_job_is_204():
    assert "204" in operation(ROUTES["claim"])["responses"]


def test_a_misspelled_field_is_caught():
    ok = operation(ROUTES["claim"])["responses"]["200"]["content"]["application/json"]["schema"]
    with pytest.raises(AssertionError):
        field_schema(ok, "job.fine_tuned_modle")
