"""``GET /api/v1/events``: the WebSocket event stream (docs/api.md, "The event stream").

The handler checks the filters (:class:`~ivr_server.api.models.EventQuery`), subscribes to the
:class:`~ivr_server.api.events.EventHub` and keeps the socket open; the subscriber's task sends.
The stream is one-way: what the client sends is ignored (aiohttp answers pings and close frames).
Past ``api.max-subscribers`` clients (or ``api.max-subscribers-per-peer`` from one address) the
upgrade is refused with 503 and the reason, before anything is subscribed.
"""

from __future__ import annotations

__all__ = ["event_filter", "events"]

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from aiohttp import web

from ivr_server.api.answers import ApiError
from ivr_server.api.events import EventFilter, split_values
from ivr_server.api.models import EventQuery

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

log = logging.getLogger("ivr_server.api")

RETRY_AFTER: Final = 5
"""Seconds a refused event-stream client is told to wait (``Retry-After``)."""
QUERY_NAMES: Final = frozenset({*EventQuery.model_fields, "access_token"})
"""The query parameters the stream takes: its filters and the browsers' token."""


def event_filter(api: ApiServer, request: web.Request) -> EventFilter:
    """The filter of the request's query: 400 for an unknown parameter or event name, 404 for
    an unknown IVR."""
    query = request.query
    unknown = sorted(set(query) - QUERY_NAMES)
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)}")
    asked = EventQuery(
        dn=split_values(query.getall("dn", [])),
        ivr=split_values(query.getall("ivr", [])),
        type=split_values(query.getall("type", [])),
    )
    bad = sorted(set(asked.type) - api.event_names)
    if bad:
        raise ApiError(400, f"unknown event type(s): {', '.join(bad)}")
    config = api.server.config
    ivr_dns: set[tuple[str, str]] = set()
    for name in asked.ivr:
        ivr = config.ivr(name)
        if ivr is None:
            raise ApiError(404, f"no IVR {name!r}")
        for port in ivr.ports:
            switch = config.port_switch_name(ivr, port)
            if switch is not None:
                ivr_dns.add((switch, port.dn))
    return EventFilter(
        dns=frozenset(asked.dn),
        ivr_dns=frozenset(ivr_dns),
        ivrs_given=bool(asked.ivr),
        types=frozenset(asked.type),
    )


async def events(api: ApiServer, request: web.Request) -> web.StreamResponse:
    chosen = event_filter(api, request)
    ws = web.WebSocketResponse(heartbeat=30.0, compress=False)  # the same bytes to every client
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "this endpoint is a WebSocket (send an Upgrade request)")
    hub = api.hub
    peer = request.remote or ""
    limits = api.server.config.api
    refused = hub.refusal(peer, limits.max_subscribers, limits.max_subscribers_per_peer)
    if refused is not None:
        log.warning("event stream client %s refused: %s", peer, refused)
        raise ApiError(503, refused, headers={"Retry-After": str(RETRY_AFTER)})
    subscriber = hub.subscribe(chosen, api.event_queue_limit, peer)
    hub.sockets.add(ws)
    sender: asyncio.Task[None] | None = None
    try:
        await ws.prepare(request)
        sender = asyncio.get_running_loop().create_task(subscriber.run(ws))
        async for _message in ws:
            pass  # the stream is one-way; pings and close frames are handled by aiohttp
    finally:
        hub.unsubscribe(subscriber)
        hub.sockets.discard(ws)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
    return ws
