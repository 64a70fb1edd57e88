"""Log lines about sessions and calls carry their context fields; LogMsg lands at its level."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from ivr_server.runtime import IvrServer
from tests.integration.rawlink import RawLink, start_call

StartServer = Callable[..., Awaitable[IvrServer]]


async def test_call_and_session_fields_on_log_records(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ivr_server")
    server = await start_server()
    link = await RawLink.open(server.port)
    await link.login("L")
    await start_call(link, "C1", "1")
    await link.send("C1", "<LogMsg MsgType='Trace' Msg='prompt played'/>")
    await link.send("C1", "<RouteRequest RouteDN='nope'/>")
    await link.recv_doc()
    conn_id = server.service.calls.find("C1")[0].conn_id
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await link.send("C1", "<CallInfoReq/>")
    await link.recv_doc()
    records = caplog.records
    ivr_log = [r for r in records if r.name == "ivr_server.service.ivr"]
    assert [(r.getMessage(), r.levelno, getattr(r, "ivr_level", None)) for r in ivr_log] == [
        ("prompt played", logging.DEBUG, "Trace")
    ]
    assert getattr(ivr_log[0], "call_id", None) == "C1"
    assert getattr(ivr_log[0], "conn_id", None) == conn_id
    refused = [r for r in records if "not a routing point" in r.getMessage()]
    assert refused and getattr(refused[0], "session", None) is not None
    assert getattr(refused[0], "call_id", None) == "C1"
    call_lines = [r for r in records if r.name == "ivr_server.calls"]
    assert call_lines and all(getattr(r, "call_id", None) == "C1" for r in call_lines)
    assert any(getattr(r, "conn_id", None) == conn_id for r in call_lines)
    await link.close()
