"""Refused requests, over TCP: counted in /metrics by request and cause, logged at INFO once per
cause per interval (the first in full, then a summary line with a count), at DEBUG each
(docs/errors.md, "Message errors"; issue 20 item 6)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr_server.api import ApiServer
from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink

StartServer = Callable[..., Awaitable[IvrServer]]

INTERVAL = 0.5
"""The log interval of these tests (10 s by default)."""

UDATA_GET = "<UDataGet Keys='k'><RequestId>{n}</RequestId></UDataGet>"
END_CALL = '<EndCall EndCause="Normal"/>'


def open_config() -> ServerConfig:
    """The default configuration with an API anyone may read."""
    base = default_config()
    api = base.api.model_copy(update={"token": None, "public_read": True, "listen": ()})
    return base.model_copy(update={"api": api})


async def refuse(link: RawLink, count: int) -> None:
    """``count`` UDataGet and ``count`` EndCall on CallIds nobody has: two causes."""
    for n in range(count):
        await link.send(f"nobody-{n}", UDATA_GET.format(n=n))
        await link.send(f"nobody-{n}", END_CALL)
    for _ in range(2 * count):
        _, reply, _ = await link.recv_doc()
        assert reply.tag in ("UDataResp", "CallError")


async def refusals_metric(server: IvrServer) -> dict[tuple[str, str], float]:
    assert isinstance(server.api, ApiServer)
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.api.url + "/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ivr_server_refusals":
            for sample in family.samples:
                if sample.name == "ivr_server_refusals_total":
                    out[(sample.labels["request"], sample.labels["cause"])] = sample.value
    return out


def service_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ivr_server.service" and r.levelno == level and "refused" in r.getMessage()
    ]


async def test_refusals_are_counted_by_cause_and_logged_once_per_cause_per_interval(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(open_config(), api=ApiServer, api_listen=LOOPBACK_0)
    server.service.refusal_log.interval = INTERVAL
    link = await RawLink.open(server.port)
    try:
        await link.login("L")
        with caplog.at_level(logging.DEBUG, logger="ivr_server.service"):
            await refuse(link, 40)
            await asyncio.sleep(INTERVAL * 1.5)  # the summaries are due: the timer writes them
            await refuse(link, 10)  # counted again, in a new interval
            await asyncio.sleep(INTERVAL * 1.5)
    finally:
        await link.close()

    assert await refusals_metric(server) == {
        ("UDataGet", "UDataResp:NoSuchCall"): 50,
        ("EndCall", "NoSuchCall"): 50,
    }
    info = service_lines(caplog, logging.INFO)
    debug = service_lines(caplog, logging.DEBUG)
    for request, cause in (("UDataGet", "UDataResp:NoSuchCall"), ("EndCall", "NoSuchCall")):
        said = f"({request} refused: {cause}"
        firsts = [line for line in info if said in line]
        assert firsts and all(line.startswith("session 1: ") for line in firsts)
        assert "more of these are counted, one line every 0.5 s" in firsts[0]
        summaries = [line for line in info if f"more {request} refused ({cause}) in" in line]
        counts = [int(line.split()[0]) for line in summaries]
        assert counts[0] == 39  # the first batch, summed up once its interval is over
        assert len(firsts) + sum(counts) == 50
        each = [line for line in debug if said in line]
        assert len(each) == 50 - len(firsts)  # at DEBUG: every refusal not logged at INFO
    # at most two INFO lines per cause per interval (the full one, then the summary)
    assert len(info) <= 8


async def test_a_quiet_cause_is_logged_in_full_again(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(open_config(), api=ApiServer, api_listen=LOOPBACK_0)
    server.service.refusal_log.interval = INTERVAL
    link = await RawLink.open(server.port)
    try:
        await link.login("L")
        with caplog.at_level(logging.INFO, logger="ivr_server.service"):
            await refuse(link, 1)
            await asyncio.sleep(INTERVAL * 1.5)
            await refuse(link, 1)
    finally:
        await link.close()
    info = service_lines(caplog, logging.INFO)
    assert len(info) == 4 and all("more of these are counted" in line for line in info)
