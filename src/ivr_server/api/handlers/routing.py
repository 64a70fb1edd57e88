"""Acts on routing points (docs/api.md, "Routing points: an external router"): route or treat a
waiting call, and choose who routes a routing point's calls (built-in rules, API clients, a
webhook, nobody)."""

from __future__ import annotations

__all__ = ["apply_treatment", "route_call", "set_router"]

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ivr_server.api.answers import json_response, read_body
from ivr_server.api.models import RouteBody, RouterBody, TreatmentBody, kv_items
from ivr_server.api.webhook import WebhookRouter

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

log = logging.getLogger("ivr_server.api")


async def route_call(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, RouteBody)
    info = request.match_info
    result = api.control.route_call(
        info["switch"],
        info["dn"],
        info["conn_id"],
        route_type=body.route_type,
        dest=body.dest,
        extensions=kv_items(body.extensions),
        now=api.now(),
    )
    return api.acted(result)


async def apply_treatment(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, TreatmentBody)
    info = request.match_info
    result = api.control.apply_treatment(
        info["switch"],
        info["dn"],
        info["conn_id"],
        treatment_type=body.type,
        parameters=kv_items(body.parameters),
        extensions=kv_items(body.extensions),
        now=api.now(),
    )
    return api.acted(result)


async def set_router(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, RouterBody)
    switch, dn = request.match_info["switch"], request.match_info["dn"]
    control = api.control
    control.routing_point(switch, dn)
    webhook: WebhookRouter | None = None
    if body.router == "webhook":
        assert body.url is not None
        server = api.server
        webhook = WebhookRouter(
            control,
            switch,
            dn,
            body.url,
            client=api.http_client,
            timeout=lambda: server.config.server.timers.router_timeout,
            flush=server.flush,
        )
    choice = control.set_router(switch, dn, body.router, webhook, body.url, now=api.now())
    old = api.webhooks.pop((switch, dn), None)
    if old is not None:
        old.close()
    if webhook is not None:
        api.webhooks[(switch, dn)] = webhook
    log.info("routing point %s/%s: router %s %s", switch, dn, choice.mode, choice.url or "")
    return json_response({"switch": switch, "dn": dn, "router": choice.mode, "url": choice.url})
