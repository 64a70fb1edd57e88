"""Access numbers on the real server (MODES-AND-HA §1.4 X1-X2, G24; docs/access-numbers.md):
AccessNumGet/AccessNumCancel over TCP, the data handed to the call that arrives on the number's
DNIS, expiry, exhaustion, refusals, reload, statistics, the HTTP API; nothing left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV, ApiServer
from ivr_server.calls import call_id_of
from ivr_server.config import LocationConfig, ServerConfig, StatisticConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.sites import PeerAsk, PeerRelease
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, new_call_body, server_doc, start_call

StartServer = Callable[..., Awaitable[IvrServer]]
TOKEN = "access-t0ken"
GET = "<AccessNumGet DestDN='7001' Location='Remote'/>"
ACCOUNT = "<UDataEx><Node Name='Account' Type='Str' Val='42'/></UDataEx>"


def config(*locations: LocationConfig, token: str | None = TOKEN) -> ServerConfig:
    base = default_config()
    stats = (
        StatisticConfig(
            name="FreeRemote",
            stat_type="CurrNumberFreeAccessNumbers",
            object_id="Remote",
            object_type="Location",
        ),
    )
    api = base.api.model_copy(update={"token": token, "listen": ()})
    has_remote_pool = any(x.name == "Remote" and x.peer is None for x in locations)
    return base.model_copy(
        update={
            "locations": locations,
            "api": api,
            "statistics": base.statistics + (stats if has_remote_pool else ()),
        }
    )


def remote(
    numbers: tuple[str, ...] = ("88005500-88005502",), lifetime: float = 60
) -> LocationConfig:
    return LocationConfig(name="Remote", numbers=numbers, lifetime=lifetime)


async def expect(link: RawLink, call_id: str, body: str) -> None:
    got_id, _, raw = await link.recv_doc()
    assert (got_id, raw) == (call_id, server_doc(call_id, body))


async def ask(link: RawLink, call_id: str, request: str, answer: str) -> None:
    await link.send(call_id, request)
    await expect(link, call_id, answer)


def success(number: str) -> str:
    return f"<AccessNumResp Action='Get' Result='Success' AccessNum='{number}'/>"


GET_FAILURE = "<AccessNumResp Action='Get' Result='Failure'/>"
CANCEL_OK = "<AccessNumResp Action='Cancel' Result='Success'/>"
CANCEL_FAILURE = "<AccessNumResp Action='Cancel' Result='Failure'/>"


async def all_data(link: RawLink, call_id: str, request_id: int = 7) -> bytes:
    await link.send(call_id, f"<UDataGetAll><RequestId>{request_id}</RequestId></UDataGetAll>")
    got_id, _, raw = await link.recv_doc()
    assert got_id == call_id
    return raw


def nothing_reserved(server: IvrServer) -> None:
    numbers = server.service.access_numbers.numbers
    assert numbers.reserved == {}
    assert numbers.asking() == numbers.held_on_peers() == 0
    assert numbers.next_deadline() is None
    for pool in numbers.pools.values():
        assert pool.free == pool.size


@pytest.fixture
async def ivr(start_server: StartServer) -> AsyncIterator[Callable[..., Awaitable[RawLink]]]:
    links: list[RawLink] = []

    async def open_link(server: IvrServer) -> RawLink:
        link = await RawLink.open(server.port)
        links.append(link)
        await link.login("L")
        return link

    yield open_link
    for link in links:
        await link.close()


async def test_get_binds_the_data_and_the_call_on_the_dnis_gets_it(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote()))
    link = await ivr(server)
    await start_call(
        link,
        "C",
        "1",
        "<DNIS>3002</DNIS><UDataEx><Node Name='Lang' Type='Str' Val='fr'/><Node Name='Account' Type='Str' Val='1'/></UDataEx>",
    )
    await link.send(
        "C",
        f"<AccessNumGet DestDN='7001' Location='Remote' XRouteType='DnisPool'>{ACCOUNT}</AccessNumGet>",
    )
    await expect(link, "C", success("88005500"))
    reservation = server.service.access_numbers.numbers.peek("88005500")
    assert reservation is not None and call_id_of(reservation.call_id or "") == "C"
    await link.send(
        "C", "<EndCall EndCause='Normal'/>"
    )  # the call ends: its number stays for the call to come
    await asyncio.sleep(0.05)
    assert server.service.access_numbers.numbers.peek("88005500") is not None
    await start_call(link, "D", "2", "<DNIS>88005500</DNIS>")
    raw = await all_data(link, "D")
    assert raw == server_doc(
        "D",
        "<UDataResp Result='Success'><RequestId>7</RequestId><UDataEx>"
        "<Node Name='Lang' Type='Str' Val='fr'/><Node Name='Account' Type='Str' Val='42'/>"
        "</UDataEx></UDataResp>",
    )
    nothing_reserved(server)
    pool = server.service.access_numbers.numbers.pools["Remote"]
    assert (pool.counts.reserved, pool.counts.handed_off) == (1, 1)
    # a third call on the same DNIS gets nothing more
    await start_call(link, "E", "3", "<DNIS>88005500</DNIS>")
    assert b"Account" not in await all_data(link, "E")


async def test_cancel_releases_and_a_second_get_replaces(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote()))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
    await ask(link, "C", GET, success("88005500"))
    await ask(link, "C", GET, success("88005501"))  # replaces: 88005500 is free again
    assert server.service.access_numbers.numbers.counts("Remote") == (2, 1)
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_OK)
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
    nothing_reserved(server)


async def test_a_number_expires_after_its_lifetime(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote(lifetime=0.3)))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await ask(link, "C", GET, success("88005500"))
    await asyncio.sleep(0.5)
    nothing_reserved(server)
    assert server.service.access_numbers.numbers.pools["Remote"].counts.expired == 1
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
    await start_call(link, "D", "2", "<DNIS>88005500</DNIS>")
    assert b"UDataEx" not in await all_data(link, "D")


async def test_exhaustion_unknown_location_and_route_types_fail(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote(numbers=("1",))))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await start_call(link, "D", "2")
    await ask(link, "C", GET, success("1"))
    await ask(link, "D", GET, GET_FAILURE)
    await ask(link, "D", "<AccessNumGet DestDN='7001' Location='Nowhere'/>", GET_FAILURE)
    for route_type in ("Route", "Reroute", "Direct", "DirectNotoken", "DirectUUI"):
        await ask(
            link,
            "C",
            f"<AccessNumGet DestDN='7001' Location='Remote' XRouteType='{route_type}'/>",
            GET_FAILURE,
        )
    # the refused Get replaced the call's reservation: nothing is left
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
    nothing_reserved(server)
    assert server.service.access_numbers.numbers.pools["Remote"].counts.exhausted == 1


async def test_a_network_call_gets_failure(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote()))
    link = await ivr(server)
    await link.send("N", new_call_body("5000"))
    await asyncio.sleep(0.1)
    call = next(iter(server.service.calls.find("N")), None)
    if call is None or not call.network:
        pytest.skip("Network calls are not admitted by this build")
    await ask(link, "N", GET, GET_FAILURE)
    await ask(link, "N", "<AccessNumCancel/>", CANCEL_FAILURE)
    nothing_reserved(server)


async def test_statistics_count_the_pool(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote()))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await ask(link, "C", GET, success("88005500"))
    await ask(
        link,
        "C",
        "<PeekStatReq><RequestId>9</RequestId><StatName>FreeRemote</StatName></PeekStatReq>",
        "<StatResp ResultCode='Success'><RequestId>9</RequestId><Result Value='2'/></StatResp>",
    )
    stats = server.service.stats
    assert stats.value("CurrNumberReservedAccessNumbers", "Remote", "Location", 0) == 1
    assert stats.value("CurrNumberReservedAccessNumbers", "Nowhere", "Location", 0) is None


async def test_reload_keeps_a_reserved_number_until_its_end(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(remote(lifetime=0.4)))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await ask(link, "C", GET, success("88005500"))
    server.service.reload(config())  # the Location and its pool go
    numbers = server.service.access_numbers.numbers
    assert numbers.pools == {} and numbers.peek("88005500") is not None
    await ask(link, "C", GET, GET_FAILURE)  # unknown Location now; the old number is released
    assert numbers.reserved == {}
    server.service.reload(config(remote(lifetime=0.4)))
    await ask(link, "C", GET, success("88005500"))
    server.service.reload(config())
    await asyncio.sleep(0.6)
    assert numbers.reserved == {} and numbers.next_deadline() is None
    assert not server.service.access_numbers.hooked  # NewCall costs nothing again


# ---------------------------------------------------------------------------------- the API


def same(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """The same reservation (its times converted to Unix seconds at different moments)."""
    for key in ("reserved_at", "expires_at"):
        assert abs(one[key] - other[key]) < 0.01
    return {**one, "reserved_at": 0, "expires_at": 0} == {
        **other,
        "reserved_at": 0,
        "expires_at": 0,
    }


class Api:
    def __init__(self, server: IvrServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.url = cast(ApiServer, server.api).url
        self.http = http

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = TOKEN
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()


@pytest.fixture
async def api(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[ServerConfig], Awaitable[Api]]]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    sessions: list[aiohttp.ClientSession] = []

    async def start(cfg: ServerConfig) -> Api:
        server = await start_server(cfg, api=ApiServer, api_listen=LOOPBACK_0)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Api(server, http)

    yield start
    for http in sessions:
        await http.close()


async def test_the_api_reserves_reads_claims_and_releases(
    api: Callable[[ServerConfig], Awaitable[Api]], ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    env = await api(config(remote(), LocationConfig(name="Far", peer="http://127.0.0.1:9")))
    path = "/api/v1/access-numbers"
    status, pools = await env.call("GET", path, token=None)
    assert status == 200
    assert pools[0] | {"reserved_total": 0} == {
        "location": "Remote",
        "peer": None,
        "size": 3,
        "free": 3,
        "reserved": 0,
        "lifetime": 60.0,
        "reserved_total": 0,
        "handed_off_total": 0,
        "expired_total": 0,
        "cancelled_total": 0,
        "exhausted_total": 0,
    }
    assert pools[1] == {"location": "Far", "peer": "http://127.0.0.1:9"}
    data = [{"name": "Account", "type": "Str", "value": "42"}]
    body = {"location": "Remote", "dest": "7001", "user_data": data}
    assert (await env.call("POST", path, body, token=None))[0] == 401
    assert (await env.call("POST", path, {"location": "Nowhere"}))[0] == 404
    assert (await env.call("POST", path, {"location": "Far"}))[0] == 409
    assert (await env.call("POST", path, {"dest": "1"}))[0] == 400
    status, reserved = await env.call("POST", path, body)
    assert status == 201
    assert (reserved["number"], reserved["user_data"], reserved["by"]) == ("88005500", data, "api")
    assert 59 < reserved["expires_at"] - reserved["reserved_at"] < 61
    assert (await env.call("GET", f"{path}/88005500", token=None))[0] in (401, 403)
    assert same((await env.call("GET", f"{path}/88005500"))[1], reserved)
    assert (await env.call("GET", f"{path}/88005501"))[0] == 404
    assert same((await env.call("POST", f"{path}/88005500/claim"))[1], reserved)
    assert (await env.call("POST", f"{path}/88005500/claim"))[0] == 404
    _, again = await env.call("POST", path, body)
    assert (await env.call("DELETE", f"{path}/{again['number']}"))[1]["number"] == "88005501"
    assert (await env.call("DELETE", f"{path}/{again['number']}"))[0] == 404
    # a number reserved over the API goes to the call that arrives on it
    _, third = await env.call("POST", path, body)
    link = await ivr(env.server)
    await start_call(link, "C", "1", f"<DNIS>{third['number']}</DNIS>")
    assert b"Val='42'" in await all_data(link, "C")
    nothing_reserved(env.server)
    _, pools = await env.call("GET", path)
    assert (pools[0]["reserved_total"], pools[0]["handed_off_total"]) == (3, 2)
    assert pools[0]["cancelled_total"] == 1
    async with env.http.get(env.url + "/metrics") as response:
        text = await response.text()
    for line in (
        'ivr_server_access_numbers{location="Remote",state="free"} 3.0',
        'ivr_server_access_numbers{location="Remote",state="reserved"} 0.0',
        'ivr_server_access_numbers_events_total{event="handed_off",location="Remote"} 2.0',
        'ivr_server_access_numbers_events_total{event="cancelled",location="Remote"} 1.0',
        'ivr_server_access_numbers_on_peers{state="held"} 0.0',
    ):
        assert line in text, line


async def test_a_peer_location_without_an_api_here_fails(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    """The API's HTTP client carries peer requests: a server that runs no API cannot ask."""
    server = await start_server(config(LocationConfig(name="Remote", peer="http://127.0.0.1:9")))
    link = await ivr(server)
    await start_call(link, "C", "1")
    await ask(link, "C", GET, GET_FAILURE)
    await ask(link, "C", "<AccessNumCancel/>", CANCEL_FAILURE)
    nothing_reserved(server)
    assert server.service.metrics.errors["access-num-get"] == 1


async def test_a_peer_answer_for_a_call_that_ended_is_released_on_the_peer(
    start_server: StartServer, ivr: Callable[..., Awaitable[RawLink]]
) -> None:
    server = await start_server(config(LocationConfig(name="Remote", peer="http://127.0.0.1:9")))
    access = server.service.access_numbers
    sent: list[PeerAsk | PeerRelease] = []
    access.peers = sent.append  # stands for the API's HTTP client
    link = await ivr(server)
    await start_call(link, "C", "1")
    await link.send("C", GET)
    await asyncio.sleep(0.1)
    assert len(sent) == 1 and isinstance(sent[0], PeerAsk)
    await link.send("C", "<EndCall EndCause='Normal'/>")
    await asyncio.sleep(0.1)
    access.peer_answered(sent[0], "555", "", server.service.now)
    server.flush()
    assert sent[1:] == [PeerRelease("http://127.0.0.1:9", "555", None, "Remote")]
    await link.expect_silence(0.2)
    nothing_reserved(server)
