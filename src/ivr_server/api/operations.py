"""Every operation of the API, once: the table the application's routes are registered from and
the OpenAPI document is generated from (:mod:`ivr_server.api.openapi`).

An :class:`Operation` is a method and path template, its handler, who may call it
(:data:`~ivr_server.api.access.Access`), the pydantic models of its request body and of its
answer, and the words of its description. A test checks that the application serves exactly
the operations of this table and that the document describes each one.
"""

from __future__ import annotations

__all__ = ["ACT_ERRORS", "OPERATIONS", "Answer", "Handler", "Operation", "Tag"]

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from aiohttp import web
from pydantic import BaseModel

from ivr_server.api import models, responses
from ivr_server.api.access import Access
from ivr_server.api.handlers import (
    access,
    admin,
    agents,
    calls,
    ha,
    nodes,  # issue 25, helper F: the nodes of an HA site
    routing,
    state,
    stats,
    stream,
)
from ivr_server.api.handlers import web as page

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

Handler = Callable[["ApiServer", web.Request], Awaitable[web.StreamResponse]]
"""``async def handler(api, request) -> response``."""

Tag = Literal[
    "read", "calls", "outbound", "routing", "agents", "switches", "access-numbers", "meta", "web"
]
"""The group an operation is listed under in the document."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One more answer an operation gives, besides success and the usual errors."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    """Its JSON body (``None``: no body described)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One endpoint of the API."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    """The path template, ``{name}`` for each path parameter (always a string)."""
    handler: Handler
    access: Access
    tag: Tag
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None
    """The model of the request body, validated whole before anything is looked up."""
    query: type[BaseModel] | None = None
    """The model of the query parameters (each repeatable)."""
    response: type[BaseModel] | None = None
    """The model of the success answer's JSON (``None``: not JSON, or nothing described)."""
    many: bool = False
    """The success answer is a JSON array of ``response``."""
    media_type: str = "application/json"
    """The success answer's media type."""
    success: int | None = 200
    """The success status (``None``: none besides :attr:`answers`)."""
    errors: tuple[int, ...] = ()
    """The error statuses it can answer (``401``/``403`` are added when it needs a token)."""
    answers: tuple[Answer, ...] = ()
    """Other answers (a WebSocket upgrade, a 409 with a body of its own)."""


ACT_ERRORS: Final = (400, 401, 403, 404, 409)
"""What an act on a call, routing point, agent or link can answer besides success."""

API: Final = "/api/v1"
_RP: Final = f"{API}/routing-points/{{switch}}/{{dn}}"
_AGENT: Final = f"{API}/agents/{{switch}}/{{dn}}"

OPERATIONS: Final[tuple[Operation, ...]] = (
    # ------------------------------------------------------------------ public
    Operation(
        method="GET",
        path="/",
        handler=page.index,
        access="public",
        tag="web",
        summary="The live web view (HTML).",
        media_type="text/html",
    ),
    Operation(
        method="GET",
        path="/static/{name}",
        handler=page.static,
        access="public",
        tag="web",
        summary="A file of the web view (JavaScript, CSS).",
        media_type="application/octet-stream",
        errors=(404,),
    ),
    Operation(
        method="GET",
        path="/openapi.json",
        handler=page.openapi,
        access="public",
        tag="meta",
        summary="This description.",
        response=responses.OpenApiDocument,
    ),
    # ------------------------------------------------------------------ read
    Operation(
        method="GET",
        path="/metrics",
        handler=stats.metrics,
        access="read",
        tag="meta",
        summary="Prometheus metrics (text exposition format).",
        media_type="text/plain",
    ),
    Operation(
        method="GET",
        path=f"{API}/state",
        handler=state.get_state,
        access="read",
        tag="read",
        summary="Everything, in one document (without user data and caller numbers when read "
        "without the token).",
        response=responses.State,
    ),
    Operation(
        method="GET",
        path=f"{API}/ha",
        handler=ha.get_ha,
        access="read",
        tag="read",
        summary="This node's high availability: mode, role, epoch, slots held, the store and "
        "its state, commit latency, batches, replayed requests, fencing, the last takeover "
        "(docs/ha.md).",
        response=ha.HaView,
    ),
    Operation(
        method="GET",
        path=f"{API}/switches",
        handler=state.get_switches,
        access="read",
        tag="read",
        summary="Switches, links and DNs.",
        response=responses.Switch,
        many=True,
    ),
    Operation(
        method="GET",
        path=f"{API}/ivrs",
        handler=state.get_ivrs,
        access="read",
        tag="read",
        summary="IVRs and their ports (DN, agent, call).",
        response=responses.Ivr,
        many=True,
    ),
    Operation(
        method="GET",
        path=f"{API}/sessions",
        handler=state.get_sessions,
        access="read",
        tag="read",
        summary="Connected IVR sessions.",
        response=responses.Session,
        many=True,
    ),
    Operation(
        method="GET",
        path=f"{API}/calls",
        handler=state.get_calls,
        access="private",
        tag="read",
        summary="Calls of IVR ports, oldest first, with their user data.",
        response=responses.Call,
        many=True,
    ),
    Operation(
        method="GET",
        path=f"{API}/calls/{{call_id}}",
        handler=state.get_call,
        access="private",
        tag="read",
        summary="One call, by its IVR CallId.",
        response=responses.Call,
        errors=(404,),
    ),
    Operation(
        method="GET",
        path=f"{API}/calls/{{call_id}}/timeline",
        handler=calls.get_timeline,
        access="private",
        tag="read",
        summary="A call's timeline: IVR requests and replies, switch events, router "
        "instructions and errors (with the T-Library name and meaning of the code), oldest "
        "first; user data as keys only.",
        description="Served while the call runs and for `timeline-retention` after it ended "
        "(at most `timeline-calls` ended calls are kept); each call keeps its last "
        "`timeline-entries` entries.",
        response=responses.CallTimeline,
        errors=(404,),
    ),
    Operation(
        method="GET",
        path=f"{API}/routing-points",
        handler=state.get_routing_points,
        access="private",
        tag="read",
        summary="Routing points: router and waiting calls.",
        response=responses.RoutingPoint,
        many=True,
    ),
    Operation(  # issue 25, helper F
        method="GET",
        path=f"{API}/nodes",
        handler=nodes.get_nodes,
        access="read",
        tag="read",
        summary="The nodes of a site sharing a state store ([ha]): this node's role, epoch, "
        "store state and commit latency; every node's slots, lease, calls and agents.",
        response=nodes.NodesView,
    ),
    Operation(  # issue 25, helper F
        method="GET",
        path=f"{API}/nodes/calls",
        handler=nodes.get_node_calls,
        access="read",
        tag="read",
        summary="The calls of every node, read from the state store, with the node holding "
        "each (without user data and caller numbers when read without the token).",
        response=nodes.NodeCallsView,
    ),
    Operation(
        method="GET",
        path=f"{API}/stats",
        handler=stats.get_stats,
        access="read",
        tag="read",
        summary="Statistics.",
        response=responses.Stats,
    ),
    Operation(
        method="GET",
        path=f"{API}/rates",
        handler=stats.get_rates,
        access="read",
        tag="read",
        summary="Recent rates for the web view.",
        response=responses.Rates,
    ),
    Operation(
        method="GET",
        path=f"{API}/log-level",
        handler=admin.get_log_level,
        access="read",
        tag="read",
        summary="The log level.",
        response=responses.LogLevel,
    ),
    Operation(
        method="GET",
        path=f"{API}/events",
        handler=stream.events,
        access="private",
        tag="read",
        summary="The event stream (WebSocket): every switch event as JSON.",
        description="Upgrade to a WebSocket; each text message is one Event object. Filters "
        "are optional, repeatable or comma-separated; different filters combine with AND. A "
        'client that does not read fast enough gets `{"event": "overflow"}` and is '
        "disconnected. Browsers may pass the token as `access_token`. `Host` and `Origin` "
        "are checked (403): same origin, or `[api] allowed-origins`.",
        query=models.EventQuery,
        success=None,
        errors=(400, 404),
        answers=(Answer(101, "Switching Protocols: the WebSocket is open."),),
    ),
    # ------------------------------------------------------------------ act: calls
    Operation(
        method="POST",
        path=f"{API}/calls/{{call_id}}/user-data",
        handler=calls.set_user_data,
        access="act",
        tag="calls",
        summary="TAttachUserData (add) / TUpdateUserData (replace).",
        body=models.UserDataBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="DELETE",
        path=f"{API}/calls/{{call_id}}/user-data",
        handler=calls.delete_all_user_data,
        access="act",
        tag="calls",
        summary="TDeleteAllUserData.",
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="DELETE",
        path=f"{API}/calls/{{call_id}}/user-data/{{key}}",
        handler=calls.delete_key,
        access="act",
        tag="calls",
        summary="TDeleteUserData: every pair with this key.",
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{API}/calls/{{call_id}}/release",
        handler=calls.release,
        access="act",
        tag="calls",
        summary="The caller hangs up (the IVR gets CallStatus Released).",
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{API}/calls/{{call_id}}/end-call",
        handler=calls.end_call,
        access="act",
        tag="calls",
        summary="End the call on the server's side, as its Call Timeout does: the IVR gets "
        "EndCall EndCause='Timeout', the port's call is released and the port is free (logged "
        "with who asked).",
        response=responses.EndCallResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{API}/ivrs/{{ivr}}/ports/{{port}}/end-call",
        handler=calls.end_port_call,
        access="act",
        tag="calls",
        summary="End the call of an IVR port, whatever its CallId (as /calls/{call_id}/end-call):"
        " frees a stuck port. 409: the port has no call, or not the `call_id` given.",
        body=models.EndCallBody,
        response=responses.EndCallResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{API}/dial-out",
        handler=calls.dial_out,
        access="act",
        tag="outbound",
        summary="A predictive call (TMakePredictiveCall) from a routing point an IVR registered "
        "with DialOutRegistry: the IVR gets DialOut. Answered when the call is established "
        "(200) or has failed for good (409: refused, timeout, lost, failed, abandoned), with "
        "every step.",
        body=models.DialOutBody,
        response=responses.DialOutResult,
        errors=(400, 401, 403, 404),
        answers=(
            Answer(202, "No outcome yet: the request is pending.", responses.DialOutResult),
            Answer(
                409,
                "The call failed for good (`result`), or no IVR session registered the "
                'routing point for outbound calls (`{"error"}`).',
                responses.DialOutResult,
            ),
        ),
    ),
    # ------------------------------------------------------------------ act: routing
    Operation(
        method="POST",
        path=f"{_RP}/calls/{{conn_id}}/route",
        handler=routing.route_call,
        access="act",
        tag="routing",
        summary="TRouteCall: the IVR gets RouteResponse.",
        body=models.RouteBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{_RP}/calls/{{conn_id}}/treatment",
        handler=routing.apply_treatment,
        access="act",
        tag="routing",
        summary="TApplyTreatment: the IVR gets TreatCall.",
        body=models.TreatmentBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="PUT",
        path=f"{_RP}/router",
        handler=routing.set_router,
        access="act",
        tag="routing",
        summary="Choose the routing point's router: builtin, external, webhook or none.",
        body=models.RouterBody,
        response=responses.RouterChoice,
        errors=ACT_ERRORS,
    ),
    # ------------------------------------------------------------------ act: agents, links
    Operation(
        method="POST",
        path=f"{_AGENT}/login",
        handler=agents.agent_login,
        access="act",
        tag="agents",
        summary="TAgentLogin on any DN.",
        body=models.AgentLoginBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{_AGENT}/logout",
        handler=agents.agent_logout,
        access="act",
        tag="agents",
        summary="TAgentLogout.",
        body=models.AgentLogoutBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{_AGENT}/ready",
        handler=agents.agent_ready,
        access="act",
        tag="agents",
        summary="TAgentSetReady.",
        body=models.AgentStateBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="POST",
        path=f"{_AGENT}/not-ready",
        handler=agents.agent_not_ready,
        access="act",
        tag="agents",
        summary="TAgentSetNotReady.",
        body=models.AgentStateBody,
        response=responses.ActResult,
        errors=ACT_ERRORS,
    ),
    Operation(
        method="PUT",
        path=f"{API}/switches/{{switch}}/link",
        handler=agents.set_link,
        access="act",
        tag="switches",
        summary="Bring a T-Server link up or down (maintenance).",
        body=models.LinkBody,
        response=responses.LinkResult,
        errors=(400, 401, 403, 404),
    ),
    # ------------------------------------------------------------------ access numbers
    Operation(
        method="GET",
        path=f"{API}/access-numbers",
        handler=access.get_pools,
        access="read",
        tag="access-numbers",
        summary="The Locations of access numbers: each pool's free and reserved numbers and what "
        "happened to them (a peer's Location: where it is).",
        response=access.AccessNumberPool,
        many=True,
    ),
    Operation(
        method="POST",
        path=f"{API}/access-numbers",
        handler=access.reserve_number,
        access="act",
        tag="access-numbers",
        summary="Reserve a number of a Location's DNIS pool for its lifetime, with the data the "
        "call that arrives on it gets (what a peer server's AccessNumGet does here).",
        body=access.AccessNumberBody,
        response=access.AccessNumberReservation,
        success=201,
        errors=(400, 401, 403, 404, 409),
    ),
    Operation(
        method="GET",
        path=f"{API}/access-numbers/{{number}}",
        handler=access.get_number,
        access="private",
        tag="access-numbers",
        summary="A reserved number and the data bound to it.",
        response=access.AccessNumberReservation,
        errors=(404,),
    ),
    Operation(
        method="DELETE",
        path=f"{API}/access-numbers/{{number}}",
        handler=access.release_number,
        access="act",
        tag="access-numbers",
        summary="Release a reserved number (free again at once): what AccessNumCancel does.",
        response=access.AccessNumberReservation,
        errors=(400, 401, 403, 404),
    ),
    Operation(
        method="POST",
        path=f"{API}/access-numbers/{{number}}/claim",
        handler=access.claim_number,
        access="act",
        tag="access-numbers",
        summary="Claim a reserved number's data, as the call that arrives on it does: the "
        "number is free again.",
        response=access.AccessNumberReservation,
        errors=(400, 401, 403, 404),
    ),
    # ------------------------------------------------------------------ act: the server
    Operation(
        method="PUT",
        path=f"{API}/log-level",
        handler=admin.set_log_level,
        access="act",
        tag="meta",
        summary="Change the log level at run time.",
        body=models.LogLevelBody,
        response=responses.LogLevel,
        errors=(400, 401, 403),
    ),
    Operation(
        method="POST",
        path=f"{API}/reload",
        handler=admin.reload_config,
        access="act",
        tag="meta",
        summary="Re-read the configuration file (as SIGHUP). A file that does not load, or that "
        "would take away the IVR, port, switch or DN of a live call, is refused (409) and "
        'nothing changes; `{"force": true}` applies the latter, ending those calls first.',
        body=models.ReloadBody,
        response=responses.ReloadResult,
        errors=(400, 401, 403),
        answers=(
            Answer(409, "Refused, nothing changed: `result` says why.", responses.ReloadResult),
        ),
    ),
)
