"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the table of operations.

Every path, method, parameter, request body, answer and security requirement comes from
:data:`~ivr_server.api.operations.OPERATIONS`; the schemas are the JSON Schemas pydantic
generates from the very models that validate the request bodies
(:mod:`ivr_server.api.models`, validation mode) and that describe the answers
(:mod:`ivr_server.api.responses`, serialization mode). Nothing here is written by hand but the
document's head and the words of the common error statuses.
"""

from __future__ import annotations

__all__ = ["document"]

from collections.abc import Iterable
from functools import cache
from typing import Any, Final, get_args

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ivr_server.api.access import TOKEN_ENV, Access
from ivr_server.api.operations import OPERATIONS, Operation, Tag
from ivr_server.api.responses import Error

REF: Final = "#/components/schemas/{model}"

ERROR_TEXT: Final = {
    400: "Malformed JSON or invalid fields; nothing was changed.",
    401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
    403: "No token is configured on the server (requests that need it are refused), or the "
    "`Host` or `Origin` of an act or of the event stream is not allowed.",
    404: "Unknown call, switch, DN, routing point or IVR.",
    409: "The switch refused the request (EventError: `error_code`, `error`) or the state "
    "does not allow it; nothing was changed.",
}
"""What each error status means, the same for every operation."""

SECURITY: Final[dict[Access, list[dict[str, list[str]]]]] = {
    "public": [],
    "read": [{}, {"bearerAuth": []}],
    "private": [{"bearerAuth": []}],
    "act": [{"bearerAuth": []}],
}
"""The security requirement of each access level (``read``: the token is optional, under
``[api] public-read``)."""

Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]
"""The ``$ref`` of each model in each mode."""

TAGS: Final = get_args(Tag)


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
    for op in operations:
        for model in (op.body, op.query):
            if model is not None:
                found[(model, "validation")] = None
        for model in (op.response, *(answer.model for answer in op.answers)):
            if model is not None:
                found[(model, "serialization")] = None
    return sorted(found, key=lambda key: (key[0].__name__, key[1]))


def _schemas(operations: tuple[Operation, ...]) -> tuple[Refs, dict[str, Any]]:
    """Each model's reference, and every schema the references point to."""
    models = _models(operations)
    refs, definitions = models_json_schema(models, ref_template=REF)
    return {key: refs[key] for key in models}, definitions.get("$defs", {})


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _query_parameters(model: type[BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One repeatable parameter per field of ``model`` (``schema``: its validation schema)."""
    properties: dict[str, Any] = schema["properties"]
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": field.description or "",
            "style": "form",
            "explode": True,
            "schema": {key: value for key, value in properties[name].items() if key != "default"},
        }
        for name, field in model.model_fields.items()
    ]


def _operation_id(op: Operation) -> str:
    words = [
        part.strip("{}").replace("-", "_").replace(".", "_")
        for part in op.path.split("/")
        if part and part not in ("api", "v1")
    ]
    return "_".join([op.method.lower(), *words]) or "get_index"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(
    op: Operation,
    refs: Refs,
    definitions: dict[str, Any],
) -> dict[str, Any]:
    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "serialization")]

    responses: dict[str, Any] = {}
    if op.success is not None:
        content: dict[str, Any] = {op.media_type: {}}
        if op.response is not None:
            schema = ref(op.response)
            content = _json({"type": "array", "items": schema} if op.many else schema)
        responses[str(op.success)] = {"description": "OK", "content": content}
    needs_token = {401, 403} if op.access != "public" else set()
    for status in sorted(set(op.errors) | needs_token):
        responses[str(status)] = {
            "description": ERROR_TEXT.get(status, "Error"),
            "content": _json(ref(Error)),
        }
    for answer in op.answers:
        responses[str(answer.status)] = {"description": answer.description}
        if answer.model is not None:
            responses[str(answer.status)]["content"] = _json(ref(answer.model))
    operation: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.access],
        "responses": dict(sorted(responses.items())),
    }
    if op.description:
        operation["description"] = op.description
    parameters = _path_parameters(op.path)
    if op.query is not None:
        query_ref = refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[1]
        parameters += _query_parameters(op.query, definitions[query_ref])
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": _json(refs[(op.body, "validation")]),
        }
    return operation


def build(operations: tuple[Operation, ...], version: str) -> dict[str, Any]:
    """The OpenAPI document of ``operations``."""
    refs, definitions = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, definitions)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ivr-server API",
            "version": version,
            "description": "Read the IVR Server's state, act on calls, agents, routing points "
            "and links, and watch every switch event. Acts, and reads of user data (calls, "
            "waiting calls, the event stream), need the bearer token; the other reads too "
            "unless `[api] public-read` is true. See docs/api.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"`[api] token` or the environment variable {TOKEN_ENV}.",
                }
            },
        },
    }


@cache
def document(version: str) -> dict[str, Any]:
    """The OpenAPI document of the API (built once per version)."""
    return build(OPERATIONS, version)
