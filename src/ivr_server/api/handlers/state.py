"""Reads of the server's state: everything in one document, or one part of it (docs/api.md,
"Read"). The JSON is built by :mod:`ivr_server.api.views` from the live objects."""

from __future__ import annotations

__all__ = [
    "address_text",
    "get_call",
    "get_calls",
    "get_ivrs",
    "get_routing_points",
    "get_sessions",
    "get_state",
    "get_switches",
    "state_document",
]

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr_server import __version__, logs
from ivr_server.api.access import AUTHORIZED
from ivr_server.api.answers import json_response
from ivr_server.api.handlers.stats import stats_document
from ivr_server.api.views import (
    call_view,
    calls_view,
    ivrs_view,
    routing_points_view,
    sessions_view,
    switches_view,
)

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer


def address_text(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def state_document(api: ApiServer, *, redact: bool = False) -> dict[str, Any]:
    """Everything the web view shows, in one document (``redact``: without the calls' user
    data, caller numbers and parties, for a public read)."""
    server = api.server
    control = api.control
    return {
        "server": {
            "version": __version__,
            "version_string": server.config.server.version_string,
            "started_at": round(server.started_at, 3),
            "time": round(time.time(), 3),
            "flow_control": server.service.flow_control,
            "listen": [address_text(h, p) for h, p in server.addresses],
            "api_listen": [address_text(h, p) for h, p in api.addresses],
            "log_level": logs.get_level(),
        },
        "switches": switches_view(control),
        "ivrs": ivrs_view(control),
        "sessions": sessions_view(control, api.clock),
        "calls": calls_view(control, redact=redact),
        "routing_points": routing_points_view(control, api.clock, redact=redact),
        "stats": stats_document(api),
        "redacted": redact,
    }


async def get_state(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(state_document(api, redact=not request.get(AUTHORIZED, False)))


async def get_switches(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(switches_view(api.control))


async def get_ivrs(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(ivrs_view(api.control))


async def get_sessions(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(sessions_view(api.control, api.clock))


async def get_calls(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(calls_view(api.control))


async def get_call(api: ApiServer, request: web.Request) -> web.StreamResponse:
    control = api.control
    return json_response(
        call_view(control, control.call(request.match_info["call_id"], request.query.get("ivr")))
    )


async def get_routing_points(api: ApiServer, request: web.Request) -> web.StreamResponse:
    # the external routers' clients poll here for their waiting calls: a sign of life (G19)
    api.control.router_heard(None, None, api.now())
    return json_response(routing_points_view(api.control, api.clock))
