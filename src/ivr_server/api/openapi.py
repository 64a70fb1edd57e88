"""``GET /openapi.json``: the OpenAPI 3.1 description of every endpoint.

Request bodies are described by the JSON Schemas pydantic generates from the very models that
validate them (:mod:`ivr_server.api.models`), so the two cannot disagree; responses are
hand-written below. A test checks that every route of the application is described here.
"""

from __future__ import annotations

__all__ = ["OPERATIONS", "document"]

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ivr_server.api import models

REF: Final = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
    }
    if description:
        out["description"] = description
    return out


RESPONSE_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Error": {
        "type": "object",
        "description": "Every 4xx/5xx answer. 400 adds `problems`; 409 from the switch adds "
        "`error_code`, `error_name`, `request` and `events`.",
        "properties": {
            "error": _STR,
            "problems": {
                "type": "array",
                "items": _object({"location": _STR, "message": _STR}),
            },
            "error_code": _INT,
            "error_name": _NSTR,
            "request": _STR,
            "events": _array("Event"),
        },
        "required": ["error"],
    },
    "KvItem": {
        "description": "A user-data / extensions item: a node or a nested list.",
        "oneOf": [
            _object(
                {
                    "name": _STR,
                    "type": {"enum": ["Str", "Int", "Bin"]},
                    "value": {"type": ["string", "integer"]},
                }
            ),
            _object({"name": _STR, "list": _array("KvItem")}),
        ],
    },
    "Event": {
        "type": "object",
        "description": "A switch event: its T-Library name, the switch, the Unix time, then "
        "every attribute of the event (docs/api.md, Event JSON). The event stream also sends "
        '`{"event": "overflow"}` before it drops a client that does not read.',
        "properties": {
            "event": _STR,
            "switch": _STR,
            "time": _NUM,
            "reference_id": {"type": ["integer", "null"]},
            "dn": _NSTR,
            "conn_id": _NSTR,
            "user_data": _array("KvItem"),
            "extensions": _array("KvItem"),
        },
        "required": ["event", "time"],
        "additionalProperties": True,
    },
    "ActResult": _object(
        {"events": _array("Event")},
        "What the act caused: every switch event published while it ran, in order.",
    ),
    "EndCallResult": _object(
        {"call_id": _STR, "ivr": _STR, "port": _STR, "events": _array("Event")},
        "The call ended (its IVR got `EndCall EndCause='Timeout'`, its port is free) and every "
        "switch event that caused.",
    ),
    "ReloadResult": {
        "type": "object",
        "description": "What a reload came to. `result`: `applied` (200, with `report`), "
        "`refused` (409: the file would take away the IVR, port, switch or DN of the "
        "`stranded_calls`; nothing changed), `invalid` (409: the file does not load, "
        "`problems`), `no-file` (409: the server runs on its built-in default). A forced "
        "reload lists in `stranded_calls` the calls it ended first. 409 answers also carry "
        "`error`.",
        "properties": {
            "result": {"enum": ["applied", "refused", "invalid", "no-file"]},
            "force": _BOOL,
            "message": _STR,
            "error": _STR,
            "stranded_calls": {
                "type": "array",
                "items": _object({"call_id": _STR, "ivr": _STR, "port": _STR, "reason": _STR}),
            },
            "stranded_total": _INT,
            "problems": {"type": "array", "items": _STR},
            "report": _object(
                {
                    "ports_unavailable": _INT,
                    "ports_available": _INT,
                    "switches_added": {"type": "array", "items": _STR},
                    "switches_removed": {"type": "array", "items": _STR},
                    "flow_control_changed": _BOOL,
                    "calls_ended": _INT,
                }
            ),
        },
        "required": ["result", "force", "message", "stranded_calls", "stranded_total", "problems"],
    },
    "Agent": _object(
        {
            "agent_id": _STR,
            "state": {"enum": ["Ready", "NotReady"]},
            "queue": _STR,
            "work_mode": _STR,
        }
    ),
    "Dn": _object(
        {
            "number": _STR,
            "type": {
                "enum": [
                    "extension",
                    "voice-treatment-port",
                    "routing-point",
                    "acd-queue",
                    "virtual-routing-point",
                ]
            },
            "registered": _BOOL,
            "in_service": _BOOL,
            "agent": _nullable(_ref("Agent")),
        }
    ),
    "Switch": _object(
        {"name": _STR, "tserver": _STR, "link_up": _BOOL, "dns": _array("Dn")},
    ),
    "CallRef": _object({"call_id": _STR, "conn_id": _NSTR, "state": _STR}),
    "Port": _object(
        {
            "number": _STR,
            "dn": _STR,
            "switch": _NSTR,
            "enabled": _BOOL,
            "available": _BOOL,
            "agent": _nullable(_ref("Agent")),
            "call": _nullable(_ref("CallRef")),
        }
    ),
    "Ivr": _object(
        {
            "name": _STR,
            "enabled": _BOOL,
            "legacy_mode": _BOOL,
            "tservers": {"type": "array", "items": _STR},
            "sessions": {"type": "array", "items": _INT},
            "ports": _array("Port"),
        }
    ),
    "Session": _object(
        {
            "id": _INT,
            "peer": _STR,
            "client_name": _NSTR,
            "known_client": _BOOL,
            "version": _NSTR,
            "monitor": _BOOL,
            "documents_in": _INT,
            "documents_out": _INT,
            "opened_at": _NUM,
        }
    ),
    "Call": _object(
        {
            "call_id": _STR,
            "ivr": _STR,
            "port": _STR,
            "dn": _STR,
            "switch": _STR,
            "conn_id": _NSTR,
            "tscall_id": {"type": ["integer", "null"]},
            "state": _STR,
            "ani": _NSTR,
            "dnis": _NSTR,
            "called_num": _STR,
            "last_event": _NSTR,
            "route_dn": _NSTR,
            "treatment": _NSTR,
            "connected": _BOOL,
            "parties": _nullable(
                {
                    "type": "array",
                    "items": _object(
                        {"dn": _STR, "role": {"enum": ["port", "party", "routing-point"]}}
                    ),
                }
            ),
            "user_data": _nullable(_array("KvItem")),
        },
        "`ani`, `dnis`, `parties` and `user_data` are `null` in the `state` of a request "
        "without the token (`redacted`).",
    ),
    "WaitingCall": _object(
        {
            "conn_id": _STR,
            "call_id": _NSTR,
            "ivr": _NSTR,
            "port": _NSTR,
            "ani": _NSTR,
            "dnis": _NSTR,
            "treatment": _NSTR,
            "since": {"type": ["number", "null"]},
        }
    ),
    "RoutingPoint": _object(
        {
            "switch": _STR,
            "dn": _STR,
            "router": {"enum": ["builtin", "external", "webhook", "none"]},
            "url": _NSTR,
            "waiting": _array("WaitingCall"),
        }
    ),
    "RouterChoice": _object(
        {
            "switch": _STR,
            "dn": _STR,
            "router": {"enum": ["builtin", "external", "webhook", "none"]},
            "url": _NSTR,
        }
    ),
    "LinkResult": _object({"switch": _STR, "link_up": _BOOL, "events": _array("Event")}),
    "LogLevel": _object({"level": _STR}),
    "Stats": {
        "type": "object",
        "description": "The statistics engine's figures (empty until it is wired).",
        "additionalProperties": True,
    },
    "Rates": _object(
        {
            "interval": _NUM,
            "window": _NUM,
            "series": {"type": "array", "items": _STR},
            "samples": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"time": _NUM},
                    "additionalProperties": _NUM,
                },
            },
        },
        "Per-second rates of cumulative counters between samples taken every `interval` "
        "seconds, over the last `window` seconds, oldest first.",
    ),
    "ServerInfo": {
        "type": "object",
        "properties": {
            "version": _STR,
            "version_string": _STR,
            "started_at": _NUM,
            "time": _NUM,
            "flow_control": _BOOL,
            "listen": {"type": "array", "items": _STR},
            "api_listen": {"type": "array", "items": _STR},
            "log_level": _STR,
        },
    },
    "State": _object(
        {
            "server": _ref("ServerInfo"),
            "switches": _array("Switch"),
            "ivrs": _array("Ivr"),
            "sessions": _array("Session"),
            "calls": _array("Call"),
            "routing_points": _array("RoutingPoint"),
            "stats": _ref("Stats"),
            "redacted": _BOOL,
        },
        "`redacted`: the request had no token (`[api] public-read`): the calls' `ani`, `dnis`, "
        "`parties` and `user_data`, the waiting calls' `ani` and `dnis` and the webhooks' `url` "
        "are `null`.",
    ),
}


@dataclass(frozen=True)
class Operation:
    """One endpoint as the description shows it."""

    method: str
    path: str
    summary: str
    tag: str
    access: str
    """``public``, ``read`` (token needed unless ``public-read``), ``private`` (user data:
    token needed) or ``act`` (token needed)."""
    response: dict[str, Any] | None = None
    body: type[BaseModel] | None = None
    content_type: str = "application/json"
    statuses: tuple[int, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_ACT = (400, 401, 403, 404, 409)

OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation("GET", "/", "The live web view (HTML).", "web", "public", content_type="text/html"),
    Operation(
        "GET",
        "/static/{name}",
        "A file of the web view (JavaScript, CSS).",
        "web",
        "public",
        content_type="application/octet-stream",
        statuses=(404,),
    ),
    Operation("GET", "/openapi.json", "This description.", "meta", "public", {"type": "object"}),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format).",
        "meta",
        "read",
        content_type="text/plain",
    ),
    Operation(
        "GET",
        "/api/v1/state",
        "Everything, in one document (without user data and caller numbers when read "
        "without the token).",
        "read",
        "read",
        _ref("State"),
    ),
    Operation(
        "GET", "/api/v1/switches", "Switches, links and DNs.", "read", "read", _array("Switch")
    ),
    Operation(
        "GET",
        "/api/v1/ivrs",
        "IVRs and their ports (DN, agent, call).",
        "read",
        "read",
        _array("Ivr"),
    ),
    Operation(
        "GET", "/api/v1/sessions", "Connected IVR sessions.", "read", "read", _array("Session")
    ),
    Operation(
        "GET",
        "/api/v1/calls",
        "Calls of IVR ports, oldest first, with their user data.",
        "read",
        "private",
        _array("Call"),
    ),
    Operation(
        "GET",
        "/api/v1/calls/{call_id}",
        "One call, by its IVR CallId.",
        "read",
        "private",
        _ref("Call"),
        statuses=(404,),
    ),
    Operation(
        "GET",
        "/api/v1/routing-points",
        "Routing points: router and waiting calls.",
        "read",
        "private",
        _array("RoutingPoint"),
    ),
    Operation("GET", "/api/v1/stats", "Statistics.", "read", "read", _ref("Stats")),
    Operation(
        "GET", "/api/v1/rates", "Recent rates for the web view.", "read", "read", _ref("Rates")
    ),
    Operation("GET", "/api/v1/log-level", "The log level.", "read", "read", _ref("LogLevel")),
    Operation(
        "GET",
        "/api/v1/events",
        "The event stream (WebSocket): every switch event as JSON.",
        "read",
        "private",
        statuses=(400, 404),
        query=(
            ("dn", "Only events whose `dn` is one of these DNs."),
            ("ivr", "Only events on the port DNs of these IVRs (`dn` or `other_dn`)."),
            ("type", "Only these event names (e.g. `EventRouteRequest`)."),
        ),
        description="Upgrade to a WebSocket; each text message is one Event object. Filters "
        "are optional, repeatable or comma-separated; different filters combine with AND. A "
        'client that does not read fast enough gets `{"event": "overflow"}` and is '
        "disconnected. Browsers may pass the token as `access_token`. `Host` and `Origin` "
        "are checked (403): same origin, or `[api] allowed-origins`.",
        extra={"101": {"description": "Switching Protocols: the WebSocket is open."}},
    ),
    Operation(
        "POST",
        "/api/v1/calls/{call_id}/user-data",
        "TAttachUserData (add) / TUpdateUserData (replace).",
        "calls",
        "act",
        _ref("ActResult"),
        models.UserDataBody,
        statuses=_ACT,
    ),
    Operation(
        "DELETE",
        "/api/v1/calls/{call_id}/user-data",
        "TDeleteAllUserData.",
        "calls",
        "act",
        _ref("ActResult"),
        statuses=_ACT,
    ),
    Operation(
        "DELETE",
        "/api/v1/calls/{call_id}/user-data/{key}",
        "TDeleteUserData: every pair with this key.",
        "calls",
        "act",
        _ref("ActResult"),
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/dial-out",
        "A predictive call (TMakePredictiveCall) from a routing point an IVR registered with "
        "DialOutRegistry: the IVR gets DialOut. Answered when the call is established (200) or "
        "has failed for good (409: refused, timeout, lost, failed, abandoned), with every step.",
        "outbound",
        "act",
        {"type": "object"},
        models.DialOutBody,
        statuses=(200, 202, 400, 401, 403, 404, 409),
    ),
    Operation(
        "POST",
        "/api/v1/calls/{call_id}/release",
        "The caller hangs up (the IVR gets CallStatus Released).",
        "calls",
        "act",
        _ref("ActResult"),
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/calls/{call_id}/end-call",
        "End the call on the server's side, as its Call Timeout does: the IVR gets EndCall "
        "EndCause='Timeout', the port's call is released and the port is free (logged with "
        "who asked).",
        "calls",
        "act",
        _ref("EndCallResult"),
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/ivrs/{ivr}/ports/{port}/end-call",
        "End the call of an IVR port, whatever its CallId (as /calls/{call_id}/end-call): "
        "frees a stuck port. 409: the port has no call, or not the `call_id` given.",
        "calls",
        "act",
        _ref("EndCallResult"),
        models.EndCallBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/routing-points/{switch}/{dn}/calls/{conn_id}/route",
        "TRouteCall: the IVR gets RouteResponse.",
        "routing",
        "act",
        _ref("ActResult"),
        models.RouteBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/routing-points/{switch}/{dn}/calls/{conn_id}/treatment",
        "TApplyTreatment: the IVR gets TreatCall.",
        "routing",
        "act",
        _ref("ActResult"),
        models.TreatmentBody,
        statuses=_ACT,
    ),
    Operation(
        "PUT",
        "/api/v1/routing-points/{switch}/{dn}/router",
        "Choose the routing point's router: builtin, external, webhook or none.",
        "routing",
        "act",
        _ref("RouterChoice"),
        models.RouterBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/agents/{switch}/{dn}/login",
        "TAgentLogin on any DN.",
        "agents",
        "act",
        _ref("ActResult"),
        models.AgentLoginBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/agents/{switch}/{dn}/logout",
        "TAgentLogout.",
        "agents",
        "act",
        _ref("ActResult"),
        models.AgentLogoutBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/agents/{switch}/{dn}/ready",
        "TAgentSetReady.",
        "agents",
        "act",
        _ref("ActResult"),
        models.AgentStateBody,
        statuses=_ACT,
    ),
    Operation(
        "POST",
        "/api/v1/agents/{switch}/{dn}/not-ready",
        "TAgentSetNotReady.",
        "agents",
        "act",
        _ref("ActResult"),
        models.AgentStateBody,
        statuses=_ACT,
    ),
    Operation(
        "PUT",
        "/api/v1/switches/{switch}/link",
        "Bring a T-Server link up or down (maintenance).",
        "switches",
        "act",
        _ref("LinkResult"),
        models.LinkBody,
        statuses=(400, 401, 403, 404),
    ),
    Operation(
        "POST",
        "/api/v1/reload",
        "Re-read the configuration file (as SIGHUP). A file that does not load, or that would "
        "take away the IVR, port, switch or DN of a live call, is refused (409) and nothing "
        'changes; `{"force": true}` applies the latter, ending those calls first.',
        "meta",
        "act",
        _ref("ReloadResult"),
        models.ReloadBody,
        statuses=(400, 401, 403),  # 409 is a ReloadResult (extra)
        extra={
            "409": {
                "description": "Refused, nothing changed: `result` says why.",
                "content": {"application/json": {"schema": _ref("ReloadResult")}},
            }
        },
    ),
    Operation(
        "PUT",
        "/api/v1/log-level",
        "Change the log level at run time.",
        "meta",
        "act",
        _ref("LogLevel"),
        models.LogLevelBody,
        statuses=(400, 401, 403),
    ),
)

_STATUS_TEXT: Final = {
    400: "Malformed JSON or invalid fields; nothing was changed.",
    401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
    403: "No token is configured on the server (requests that need it are refused), or the "
    "`Host` or `Origin` of an act or of the event stream is not allowed.",
    404: "Unknown call, switch, DN, routing point or IVR.",
    409: "The switch refused the request (EventError: `error_code`, `error`) or the state "
    "does not allow it; nothing was changed.",
}

_SECURITY: Final[dict[str, list[dict[str, list[str]]]]] = {
    "public": [],
    "read": [{}, {"bearerAuth": []}],
    "private": [{"bearerAuth": []}],
    "act": [{"bearerAuth": []}],
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _operation_id(op: Operation) -> str:
    words = [
        part.strip("{}").replace("-", "_").replace(".", "_")
        for part in op.path.split("/")
        if part and part not in ("api", "v1")
    ]
    return "_".join([op.method.lower(), *words]) or "get_index"


@cache
def _body_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    bodies = sorted({op.body for op in OPERATIONS if op.body is not None}, key=lambda m: m.__name__)
    refs, definitions = models_json_schema(
        [(model, "validation") for model in bodies], ref_template=REF
    )
    by_name = {model.__name__: refs[(model, "validation")] for model in bodies}
    return by_name, definitions.get("$defs", {})


@cache
def _document(version: str) -> dict[str, Any]:
    body_refs, body_schemas = _body_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {}
        content: dict[str, Any] = (
            {op.content_type: {"schema": op.response}}
            if op.response is not None
            else {op.content_type: {}}
        )
        responses.update(op.extra)
        if op.path != "/api/v1/events":
            responses["200"] = {"description": "OK", "content": content}
        for status in sorted(set(op.statuses) | ({401, 403} if op.access != "public" else set())):
            responses[str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": _ref("Error")}},
            }
        parameters = _path_parameters(op.path) + [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "style": "form",
                "explode": True,
                "schema": {"type": "array", "items": {"type": "string"}},
            }
            for name, text in op.query
        ]
        operation: dict[str, Any] = {
            "operationId": _operation_id(op),
            "summary": op.summary,
            "tags": [op.tag],
            "security": _SECURITY[op.access],
            "responses": responses,
        }
        if op.description:
            operation["description"] = op.description
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_refs[op.body.__name__]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
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
        "tags": [
            {"name": name}
            for name in ("read", "calls", "routing", "agents", "switches", "meta", "web")
        ],
        "paths": paths,
        "components": {
            "schemas": {**RESPONSE_SCHEMAS, **body_schemas},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`[api] token` or the environment variable "
                    "IVR_SERVER_API_TOKEN.",
                }
            },
        },
    }


def document(version: str) -> dict[str, Any]:
    """The OpenAPI document (built once per version)."""
    return _document(version)
