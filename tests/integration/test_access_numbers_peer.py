"""Access numbers of a peer server (MODES-AND-HA G24; docs/access-numbers.md): two real server
processes. Server B (``ivr-server serve``, a subprocess) owns the DNIS pool of Location
``Remote``; server A (in this process) names B as that Location's peer: an ``AccessNumGet`` on A
reserves the number on B over B's API, and the call that arrives at B on the number gets the
data. A peer that is down, or silent past ``request-timeout``, gives ``Failure``."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV, ApiServer
from ivr_server.config import LocationConfig
from ivr_server.runtime import IvrServer
from tests.integration.conftest import LOOPBACK_0, ROOT, Served, free_port, start, stop
from tests.integration.rawlink import RawLink, start_call
from tests.integration.test_access_numbers import (
    CANCEL_FAILURE,
    CANCEL_OK,
    GET_FAILURE,
    all_data,
    ask,
    config,
    nothing_reserved,
    success,
)

StartServer = Callable[..., Awaitable[IvrServer]]
B_TOKEN = "token-of-b"
GET = "<AccessNumGet DestDN='7001' Location='Remote'><UDataEx><Node Name='Account' Type='Str' Val='42'/></UDataEx></AccessNumGet>"
_API = re.compile(r"(http://127\.0\.0\.1:[0-9]+)/")

pytestmark = pytest.mark.slow


@pytest.fixture
def server_b(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    """Server B with the pool of ``Remote`` (2 numbers) and its API token; (process, API URL)."""
    path = tmp_path / "b.toml"
    text = (ROOT / "src/ivr_server/config/default.toml").read_text(encoding="utf-8")
    path.write_text(
        text
        + '\n[[locations]]\nname = "Remote"\nnumbers = ["88005500-88005501"]\nlifetime = "30s"\n',
        encoding="utf-8",
    )
    os.environ[TOKEN_ENV] = B_TOKEN  # inherited by the process only
    try:
        served = start("--config", str(path))
    finally:
        del os.environ[TOKEN_ENV]
    found = _API.search(served.banner)
    assert found is not None, served.banner
    yield served, found.group(1)
    stop(served)


async def b_pool(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with http.get(url + "/api/v1/access-numbers") as response:
        pools = await response.json()
    assert isinstance(pools, list)
    return dict(pools[0])


async def test_a_peer_reserves_and_its_call_gets_the_data(
    start_server: StartServer, server_b: tuple[Served, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, b_url = server_b
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)  # accepts, never answers
    silent_url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    a = await start_server(
        config(
            LocationConfig(name="Remote", peer=b_url, token=B_TOKEN),
            LocationConfig(name="Down", peer=f"http://127.0.0.1:{free_port()}"),
            LocationConfig(name="Silent", peer=silent_url, request_timeout=0.3),
            LocationConfig(name="Refusing", peer=b_url, token="wrong"),
        ),
        api=ApiServer,
        api_listen=LOOPBACK_0,
    )
    on_a = await RawLink.open(a.port)
    on_b = await RawLink.open(served.port)
    http = aiohttp.ClientSession()
    try:
        await on_a.login("L")
        await on_b.login("L")
        await start_call(on_a, "C", "1")
        await ask(on_a, "C", GET, success("88005500"))
        assert a.service.access_numbers.numbers.held_on_peers() == 1
        assert (await b_pool(http, b_url))["reserved"] == 1
        # the call the IVR dialled arrives at B on the number: it gets the data
        await start_call(on_b, "R", "1", "<DNIS>88005500</DNIS>")
        assert b"<Node Name='Account' Type='Str' Val='42'/>" in await all_data(on_b, "R")
        pool = await b_pool(http, b_url)
        assert (pool["reserved"], pool["handed_off_total"]) == (0, 1)
        # a second Get and a Cancel: the numbers go back to B's pool
        await ask(on_a, "C", GET, success("88005501"))
        await ask(on_a, "C", GET, success("88005500"))
        await ask(on_a, "C", "<AccessNumCancel/>", CANCEL_OK)
        await ask(on_a, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
        for _ in range(50):
            pool = await b_pool(http, b_url)
            if pool["reserved"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (pool["reserved"], pool["cancelled_total"]) == (0, 2)
        # faults: down, silent past request-timeout, refusing (wrong token)
        for location in ("Down", "Silent", "Refusing"):
            await ask(
                on_a, "C", f"<AccessNumGet DestDN='7001' Location='{location}'/>", GET_FAILURE
            )
        nothing_reserved(a)
    finally:
        await http.close()
        await on_a.close()
        await on_b.close()
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_the_network_example_serves_the_pool_of_remote() -> None:
    """``ivr-server serve --config examples/network.toml``: the pool of ``Remote`` reserved over
    the API; the Network call that arrives on the number gets its data; a Network call's own
    ``AccessNumGet`` is ``Failure``."""
    os.environ[TOKEN_ENV] = B_TOKEN
    try:
        served = start("--config", str(ROOT / "examples/network.toml"))
    finally:
        del os.environ[TOKEN_ENV]
    http = aiohttp.ClientSession()
    link = await RawLink.open(served.port)
    try:
        found = _API.search(served.banner)
        assert found is not None, served.banner
        url = found.group(1) + "/api/v1/access-numbers"
        auth = {"Authorization": f"Bearer {B_TOKEN}"}
        body = {
            "location": "Remote",
            "user_data": [{"name": "Account", "type": "Str", "value": "42"}],
        }
        async with http.post(url, json=body, headers=auth) as response:
            assert response.status == 201
            number = (await response.json())["number"]
        assert number == "88005500"
        await link.send(
            "N",
            "<NewCall CallControlMode='Network' Version='4.0'><CalledNum>8000</CalledNum>"
            f"<DNIS>{number}</DNIS></NewCall>",
        )
        assert b"Val='42'" in await all_data(link, "N")
        await ask(link, "N", "<AccessNumGet DestDN='7001' Location='Remote'/>", GET_FAILURE)
        async with http.get(url) as response:
            pool = (await response.json())[0]
        assert (pool["free"], pool["reserved"], pool["handed_off_total"]) == (10, 0, 1)
    finally:
        await link.close()
        await http.close()
        stop(served)
