"""Whether a routing point's router is live (MODES-AND-HA G19): a Network call is taken only at a
routing point whose router can be expected to answer.

The built-in rules are always there; an external router lives as long as its API client is
heard of; a webhook until it fails several questions in a row, then it is probed again after a
pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from ivr_server.api.webhook import FAILURES_DEAD, RETRY_AFTER, WebhookRouter
from ivr_server.routing import (
    EXTERNAL_ROUTER_WINDOW,
    BuiltinRouter,
    ExternalRouter,
    RoutingPointDispatcher,
    router_is_live,
    routing_point_live,
)
from ivr_server.service.control import Control
from ivr_server.switch import EventRouteRequest, Switch


def builtin(*points: str) -> BuiltinRouter:
    return BuiltinRouter({point: () for point in points}, lambda: 1)


# ------------------------------------------------------------------------------- external router


def test_external_router_is_live_for_its_window_after_it_was_heard_of() -> None:
    router = ExternalRouter(frozenset({"8000"}), window=10.0, now=100.0)
    assert router.is_live(100.0) and router.is_live(110.0)
    assert not router.is_live(110.5)
    router.heard(110.5)
    assert router.is_live(120.0) and not router.is_live(121.0)
    router.heard(50.0)  # an older sign of life does not shorten the window
    assert router.heard_at == 110.5


def test_external_router_never_heard_of_is_not_live() -> None:
    router = ExternalRouter(frozenset({"8000"}))
    assert router.window == EXTERNAL_ROUTER_WINDOW
    assert not router.is_live(0.0)
    router.heard(5.0)
    assert router.is_live(5.0 + EXTERNAL_ROUTER_WINDOW)


def test_router_is_live_per_kind() -> None:
    assert not router_is_live(None, 0.0)
    assert router_is_live(builtin("8000"), 1e9)  # inside the server: always
    assert router_is_live(ExternalRouter(frozenset({"8000"}), window=1.0, now=0.0), 1.0)
    assert not router_is_live(ExternalRouter(frozenset({"8000"}), window=1.0, now=0.0), 1.5)


def test_routing_point_live_reads_the_switch_router_slot() -> None:
    rules = builtin("8000", "8001")
    assert routing_point_live(rules, "8000", 0.0)
    assert not routing_point_live(rules, "8009", 0.0)  # no rules for it
    assert not routing_point_live(None, "8000", 0.0)
    external = ExternalRouter(frozenset({"8001"}), window=5.0, now=0.0)
    slot = RoutingPointDispatcher(rules, {"8001": external, "8002": None})
    assert routing_point_live(slot, "8000", 100.0)  # the configured rules still serve it
    assert routing_point_live(slot, "8001", 5.0)
    assert not routing_point_live(slot, "8001", 5.1)  # its client went quiet
    assert not routing_point_live(slot, "8002", 0.0)  # chosen: nobody
    assert not routing_point_live(slot, "8003", 0.0)
    assert not routing_point_live(RoutingPointDispatcher(None, {}), "8000", 0.0)


# ------------------------------------------------------------------------------- webhook


class Hook:
    """A webhook answering with the statuses it is given (then 204)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.asked = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.asked += 1
        status = self.statuses.pop(0) if self.statuses else 204
        if status == 200:
            return web.json_response({})
        return web.Response(status=status)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    found = Hook()
    app = web.Application()
    app.router.add_post("/route", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    found.url = f"http://{host}:{port}/route"
    yield found
    await runner.cleanup()


def event(n: int) -> EventRouteRequest:
    return EventRouteRequest(
        switch="SW", dn="8000", conn_id=f"{n:016x}", call_id=n, other_dn="7000"
    )


async def ask(router: WebhookRouter, n: int) -> None:
    router.on_event(cast(Switch, SimpleNamespace(name="SW")), event(n))
    await asyncio.gather(*router.tasks)


async def test_webhook_goes_down_after_failures_in_a_row_and_is_probed_later(hook: Hook) -> None:
    async with aiohttp.ClientSession() as http:
        router = WebhookRouter(
            cast(Control, None),  # never reached: no answer here routes or treats
            "SW",
            "8000",
            hook.url,
            client=lambda: http,
            timeout=lambda: 2.0,
            flush=lambda: None,
        )
        loop = asyncio.get_running_loop()
        assert router.is_live(loop.time())
        hook.statuses[:] = [500] * (FAILURES_DEAD - 1) + [200]
        for n in range(FAILURES_DEAD):  # failures, then a good answer: still live
            await ask(router, n)
        assert router.failures == 0 and router.is_live(loop.time())
        hook.statuses[:] = [503] * FAILURES_DEAD
        for n in range(FAILURES_DEAD):
            await ask(router, 10 + n)
        now = loop.time()
        assert router.failures == FAILURES_DEAD and not router.is_live(now)
        assert router.is_live(router.failed_at + RETRY_AFTER)  # time for a probe
        hook.statuses[:] = [502]
        await ask(router, 20)  # the probe fails: down again from its failure on
        assert not router.is_live(router.failed_at + RETRY_AFTER - 0.1)
        await ask(router, 21)  # 204: a good answer (nothing to apply)
        assert router.failures == 0 and router.is_live(loop.time())
        assert hook.asked == 2 * FAILURES_DEAD + 2


async def test_webhook_unreachable_or_nonsense_counts_as_failure() -> None:
    answers: list[Any] = []

    async def nonsense(request: web.Request) -> web.StreamResponse:
        answers.append(1)
        return web.json_response({"route_type": "Sideways"})

    app = web.Application()
    app.router.add_post("/nonsense", nonsense)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as http:
            for url in (f"http://{host}:{port}/nonsense", "http://127.0.0.1:9/route"):
                router = WebhookRouter(
                    cast(Control, None),
                    "SW",
                    "8000",
                    url,
                    client=lambda: http,
                    timeout=lambda: 2.0,
                    flush=lambda: None,
                )
                for n in range(FAILURES_DEAD):
                    await ask(router, n)
                assert not router.is_live(asyncio.get_running_loop().time()), url
    finally:
        await runner.cleanup()
    assert len(answers) == FAILURES_DEAD
