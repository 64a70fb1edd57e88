"""The real server, started in this process on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ivr_server.config import ServerConfig, default_config
from ivr_server.config.model import ListenAddress
from ivr_server.runtime import IvrServer
from tests.integration.rawlink import RawLink

LOOPBACK_0 = (ListenAddress(host="127.0.0.1", port=0),)


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[..., Awaitable[IvrServer]]]:
    servers: list[IvrServer] = []

    async def start(config: ServerConfig | None = None, **kwargs: object) -> IvrServer:
        kwargs.setdefault("api_listen", ())  # never the configuration's API port (8021)
        server = IvrServer(config or default_config(), listen=LOOPBACK_0, **kwargs)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(start_server: Callable[..., Awaitable[IvrServer]]) -> IvrServer:
    return await start_server()


@pytest.fixture
async def connect(server: IvrServer) -> AsyncIterator[Callable[[], Awaitable[RawLink]]]:
    links: list[RawLink] = []

    async def open_link() -> RawLink:
        link = await RawLink.open(server.port)
        links.append(link)
        return link

    yield open_link
    for link in links:
        await link.close()
