"""Reads of figures: the statistics engine, the recent rates of the web view's charts and the
Prometheus metrics (docs/api.md, "Read" and "Metrics")."""

from __future__ import annotations

__all__ = ["get_rates", "get_stats", "metrics", "stats_document"]

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr_server.api.answers import json_response
from ivr_server.api.metrics import exposition

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer


def stats_document(api: ApiServer) -> dict[str, Any]:
    """The statistics: :attr:`ApiServer.stats_source`'s figures when it is set, else the
    service's statistics engine (every configured statistic and the live overview)."""
    source = api.stats_source
    if source is not None:
        return dict(source())
    service = api.server.service
    now = service.now
    return {"statistics": service.stats.snapshot(now), **service.stats.overview(now)}


async def get_stats(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(stats_document(api))


async def get_rates(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(api.rates.rates())


async def metrics(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body, content_type = exposition(api.registry, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})
