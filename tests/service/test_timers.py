"""Timers in memory, the clock moved by hand: keep-alives both ways, the partial-frame timeout,
the router, call and orphan-call timeouts (docs/calls.md "Timers", "Sessions that go away").
Each is checked a moment before and at its deadline, which a test over TCP cannot do."""

from __future__ import annotations

from typing import Any

from ivr_server.config import ServerConfig, default_config
from ivr_server.wire import messages as m
from tests.service.memory import MemoryClient, MemoryServer, frame, xml_document

NO_SUCH_CALL = m.CallError(FailedReq="NoSuchCall")


def config_with(*, timers: dict[str, float] | None = None, **server: Any) -> ServerConfig:
    """The default configuration with some ``[server]`` and ``[server.timers]`` values replaced."""
    base = default_config()
    options = base.server.model_copy(
        update={**server, "timers": base.server.timers.model_copy(update=timers or {})}
    )
    return base.model_copy(update={"server": options})


def start(client: MemoryClient, call_id: str, port: str) -> None:
    got = client.send(
        call_id, f"<NewCall CallControlMode='Network'><CalledNum>{port}</CalledNum></NewCall>"
    )
    assert [doc.message for doc in got] == [
        m.CallStatus(Event="Ringing"),
        m.CallStatus(Event="Established"),
    ]


def test_server_keep_alives_are_answered_and_keep_the_link() -> None:
    server = MemoryServer(config_with(keep_alive_interval=30.0))
    client = server.connect()
    client.login()
    server.advance(29.9)
    assert client.link.keep_alive_answers == 0
    server.advance(3600.0)  # 120 requests, each answered by the client's engine
    assert client.closed is None
    assert client.request("L", "<AgentQuery ReqId='1' PortNum='1'/>").tag == "MonitorInfo"


def test_a_client_that_never_answers_keep_alives_is_closed() -> None:
    server = MemoryServer(config_with(keep_alive_interval=30.0, keep_alive_tries=2))
    client = server.connect()
    client.login()
    client.deaf = True  # reads nothing from now on
    server.advance(89.9)  # requests at 30 s and 60 s, unanswered
    assert client.closed is None
    server.advance(0.1)
    assert client.closed is not None
    assert client.session.id not in server.service.sessions


def test_the_clients_keep_alives_are_always_answered(ivr: MemoryClient) -> None:
    for answered in (1, 2, 3):
        ivr.link.send_keep_alive()
        ivr.send_bytes(b"")
        assert ivr.link.keep_alive_answers == answered


def test_a_partial_frame_never_completed_closes_the_link(server: MemoryServer) -> None:
    client = server.connect(frame_timeout=60.0)
    client.login()
    whole = frame(xml_document("L", "<AgentQuery ReqId='1' PortNum='1'/>"))
    client.send_bytes(whole[:20])
    server.advance(59.9)
    assert client.closed is None
    assert client.send_bytes(whole[20:])[0].message.tag == "MonitorInfo"  # completed in time
    client.send_bytes(whole[:3])
    server.advance(60.0)
    assert client.closed == "peer sent GLI Error frame (code 4)"


def test_router_timeout_answers_route_response_default() -> None:
    server = MemoryServer(config_with(timers={"router_timeout": 4.0}))
    client = server.connect()
    client.login()
    start(client, "C", "1")
    assert client.send("C", "<RouteRequest RouteDN='5001'/>") == []  # no router at 5001
    server.advance(3.99)
    assert client.take() == []
    server.advance(0.01)
    assert client.messages() == [m.RouteResponse(RouteType="Default")]
    assert client.request("C", "<CallInfoReq/>").tag == "CallInfoResp"


def test_call_timeout_ends_the_call_unsolicited_and_frees_the_port() -> None:
    server = MemoryServer(config_with(timers={"call_timeout": 60.0}))
    client = server.connect()
    client.login()
    start(client, "C", "1")
    server.advance(59.9)
    assert client.take() == []
    server.advance(0.1)
    assert [(doc.call_id, doc.message) for doc in client.take()] == [
        ("C", m.EndCall(EndCause="Timeout"))
    ]
    assert client.request("C", "<CallInfoReq/>") == NO_SUCH_CALL
    start(client, "D", "1")


def orphan(*, after: float) -> MemoryClient:
    """Call ``C`` on IVR_1's port 2, its session gone ``after`` seconds ago (timeout 600 s); a
    new session of IVR_1 logged in then."""
    server = MemoryServer(config_with(timers={"orphan_call_timeout": 600.0}))
    first = server.connect()
    first.login(call_id="L1")
    start(first, "C", "2")
    first.close()
    server.advance(after)
    second = server.connect()
    second.login(call_id="L2")
    return second


def test_an_orphaned_call_is_taken_over_by_the_next_session_of_its_ivr() -> None:
    second = orphan(after=599.0)
    server = second.server
    assert second.request("C", "<CallInfoReq/>").tag == "CallInfoResp"
    server.advance(3600.0)  # adopted: the orphan timeout no longer applies
    assert second.request("C", "<CallInfoReq/>").tag == "CallInfoResp"


def test_an_orphaned_call_is_released_after_the_timeout() -> None:
    second = orphan(after=600.0)
    assert second.request("C", "<CallInfoReq/>") == NO_SUCH_CALL
    start(second, "D", "2")  # the port is free


def test_a_session_of_another_ivr_does_not_adopt() -> None:
    server = MemoryServer(config_with(timers={"orphan_call_timeout": 600.0}))
    first, other = server.connect(), server.connect()
    first.login(call_id="L1")
    other.login("IVR_2", call_id="L2")
    start(first, "C", "2")
    first.close()
    assert other.request("C", "<CallInfoReq/>") == NO_SUCH_CALL
    server.advance(600.0)
    third = server.connect()
    third.login(call_id="L3")
    assert third.request("C", "<CallInfoReq/>") == NO_SUCH_CALL


def test_the_calls_events_follow_the_ivr_to_its_other_session() -> None:
    server = MemoryServer(config_with(timers={"router_timeout": 4.0}))
    first, second = server.connect(), server.connect()
    first.login(call_id="L1")
    second.login(call_id="L2")
    start(first, "C", "3")
    first.send("C", "<RouteRequest RouteDN='5001'/>")
    first.close()
    server.advance(4.0)
    assert [(doc.call_id, doc.message) for doc in second.take()] == [
        ("C", m.RouteResponse(RouteType="Default"))
    ]
