"""The API described once: the table of operations and the OpenAPI document generated from it
(src/ivr_server/api/operations.py, src/ivr_server/api/openapi.py). The application serving
exactly this table, and real answers matching its response models, are checked against the real
server in tests/integration/test_api.py."""

from __future__ import annotations

from typing import Any

from ivr_server import __version__
from ivr_server.api import openapi
from ivr_server.api.operations import OPERATIONS

DOCUMENT = openapi.document(__version__)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_operation_is_described_and_nothing_else() -> None:
    table = [(op.method, op.path) for op in OPERATIONS]
    assert len(table) == len(set(table))
    described = {
        (method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
    }
    assert described == set(table)


def test_the_document_is_well_formed() -> None:
    assert DOCUMENT["openapi"] == "3.1.0" and DOCUMENT["info"]["version"] == __version__
    operation_ids = [
        op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    schemas = DOCUMENT["components"]["schemas"]
    for ref in refs(DOCUMENT):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    tags = {tag["name"] for tag in DOCUMENT["tags"]}
    for path, item in DOCUMENT["paths"].items():
        template_names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, op in item.items():
            assert op["responses"] and set(op["tags"]) <= tags, (path, method)
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == template_names, (path, method)


def test_each_operation_says_what_it_takes_and_answers() -> None:
    for op in OPERATIONS:
        described = DOCUMENT["paths"][op.path][op.method.lower()]
        responses = described["responses"]
        if op.access == "public":
            assert described["security"] == [] and "401" not in responses, op.path
        else:
            assert {"401", "403"} <= set(responses), op.path
        if op.access in ("act", "private"):
            assert described["security"] == [{"bearerAuth": []}], op.path
        if op.access == "read":
            assert described["security"] == [{}, {"bearerAuth": []}], op.path
        if op.body is not None:
            body = described["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": f"#/components/schemas/{op.body.__name__}"}
        else:
            assert "requestBody" not in described, op.path
        if op.response is not None and op.success is not None:
            schema = responses[str(op.success)]["content"]["application/json"]["schema"]
            ref = {"$ref": f"#/components/schemas/{op.response.__name__}"}
            assert schema == ({"type": "array", "items": ref} if op.many else ref), op.path
        if op.method != "GET":
            assert op.access == "act" and "400" in responses, op.path
    events = DOCUMENT["paths"]["/api/v1/events"]["get"]
    assert {p["name"] for p in events["parameters"] if p["in"] == "query"} == {"dn", "ivr", "type"}
    assert "101" in events["responses"] and "200" not in events["responses"]


def test_request_bodies_are_the_models_that_validate_them() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    user_data = schemas["UserDataBody"]
    assert user_data["additionalProperties"] is False
    assert set(user_data["required"]) == {"action", "data"}
    assert schemas["LinkBody"]["properties"]["up"]["type"] == "boolean"
    assert schemas["State"]["required"] == [
        "server",
        "switches",
        "ivrs",
        "sessions",
        "calls",
        "routing_points",
        "stats",
        "redacted",
    ]
