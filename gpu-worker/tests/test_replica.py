"""softgrpo.replica against the API's own OpenAPI document: every route it calls exists under the "Serving
replicas" tag with exactly the body fields it sends (a renamed field on either side fails here, not in production)."""
import json
from pathlib import Path

from softgrpo.replica import ROUTES

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())


def test_the_replica_client_calls_the_serving_replica_routes_with_their_fields():
    for name, (method, path, fields) in ROUTES.items():
        op = OPENAPI["paths"][path][method]
        assert "Serving replicas" in op["tags"], name
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == set(fields), name


def test_every_serving_replica_write_route_is_called():
    theirs = {(m, p) for p, ops in OPENAPI["paths"].items() for m, op in ops.items()
              if "Serving replicas" in op.get("tags", []) and m == "post"}
    assert theirs == {(m, p) for m, p, _ in ROUTES.values()}
