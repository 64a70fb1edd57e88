"""Configuration reload without restart: ports, IVRs, flow control, a refused bad file."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr_server.config import default_config, parse_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink

StartServer = Callable[..., Awaitable[IvrServer]]

BASE = """
[server]
listen = ["127.0.0.1:0"]
flow-control = {flow}

[[switches]]
name = "SW"
dns = [
  {{ number = "4001", type = "voice-treatment-port" }},
  {{ number = "4002", type = "voice-treatment-port" }},
  {{ number = "4003", type = "voice-treatment-port" }},
]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR_A"
enabled = {enabled}
tservers = ["TS"]
legacy-mode = false
ports = [
{ports}
]
"""


def config_text(
    ports: str = '{ number = "1", dn = "4001" },\n{ number = "2", dn = "4002" },',
    enabled: str = "true",
    flow: str = "false",
) -> str:
    return BASE.format(ports=ports, enabled=enabled, flow=flow)


def port_event(port: str, status: str) -> m.MonitorInfo:
    return m.MonitorInfo(Port=m.Port(PortNum=port, Status=status))  # type: ignore[arg-type]


async def test_ports_removed_disabled_and_readded(start_server: StartServer) -> None:
    server = await start_server(parse_config(config_text()))
    link = await RawLink.open(server.port)
    v3 = await RawLink.open(server.port)
    await link.login("L", name="IVR_A")
    await v3.login("L3", name="IVR_A", version="3.0")
    server.reload(parse_config(config_text(ports='{ number = "1", dn = "4001" },')))
    assert (await link.recv_doc())[:2] == ("L", port_event("2", "Unavailable"))
    server.reload(
        parse_config(
            config_text(
                ports='{ number = "1", dn = "4001", enabled = false },\n{ number = "2", dn = "4002" },'
            )
        )
    )
    got = {(await link.recv_doc())[1] for _ in range(2)}
    assert got == {port_event("1", "Unavailable"), port_event("2", "OK")}
    server.reload(parse_config(config_text(enabled="false")))
    assert (await link.recv_doc())[1] == port_event("2", "Unavailable")
    server.reload(parse_config(config_text()))
    got = {(await link.recv_doc())[1] for _ in range(2)}
    assert got == {port_event("1", "OK"), port_event("2", "OK")}
    # the same configuration again changes nothing; version 3.0 sessions hear nothing at all
    server.reload(parse_config(config_text()))
    await link.expect_silence(0.2)
    await v3.expect_silence(0.1)
    await link.close()
    await v3.close()


async def test_removed_dn_makes_its_port_unavailable(start_server: StartServer) -> None:
    server = await start_server(parse_config(config_text()))
    link = await RawLink.open(server.port)
    await link.login("L", name="IVR_A")
    await link.send("L", "<AgentLogin ReqId='1' PortNum='2' Queue='' AgentId='7' Password=''/>")
    await link.recv_doc()
    await link.recv_doc()
    text = config_text(ports='{ number = "1", dn = "4001" },').replace(
        '  {{ number = "4002", type = "voice-treatment-port" }},\n'.replace("{{", "{").replace(
            "}}", "}"
        ),
        "",
    )
    server.reload(parse_config(text))
    seen = [(await link.recv_doc())[1] for _ in range(2)]
    assert m.MonitorInfo(Agent=m.Agent(PortNum="2", Status="LoggedOut")) in seen
    assert port_event("2", "Unavailable") in seen
    await link.close()


async def test_flow_control_change_is_announced(start_server: StartServer) -> None:
    server = await start_server(parse_config(config_text()))
    link = await RawLink.open(server.port)
    await link.login("L", name="IVR_A")
    server.reload(parse_config(config_text(flow="true")))
    assert (await link.recv_doc())[:2] == ("L", m.FlowControl(Status="On"))
    await link.login("L2", name="IVR_A")  # (the login helper accepts any FlowControl)
    server.reload(parse_config(config_text(flow="false")))
    assert (await link.recv_doc())[:2] == ("L2", m.FlowControl(Status="Off"))
    await link.close()


async def test_bad_file_is_refused_and_the_running_configuration_stays(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "ivr.toml"
    path.write_text(config_text(), encoding="utf-8")
    server = await start_server(parse_config(config_text()), config_path=str(path))
    link = await RawLink.open(server.port)
    await link.login("L", name="IVR_A")
    path.write_text(config_text(ports='{ number = "1", dn = "9999" },'), encoding="utf-8")
    assert server.reload() is None
    path.write_text("this is [not toml", encoding="utf-8")
    assert server.reload() is None
    await link.expect_silence(0.2)
    await link.send("L", "<AgentQuery ReqId='q' PortNum='2'/>")
    assert (await link.recv_doc())[1] == m.MonitorInfo(
        ReqId="q", Agent=m.Agent(PortNum="2", Status="Unknown")
    )
    path.write_text(config_text(ports='{ number = "1", dn = "4001" },'), encoding="utf-8")
    report = server.reload()
    assert report is not None and report.ports_unavailable == 1
    assert (await link.recv_doc())[1] == port_event("2", "Unavailable")
    await link.close()


async def test_reload_of_the_default_keeps_sessions(start_server: StartServer) -> None:
    server = await start_server(default_config())
    link = await RawLink.open(server.port)
    await link.login("L")
    assert server.reload() is None  # built-in default: nothing to re-read
    server.reload(default_config())
    await link.expect_silence(0.2)
    await link.close()


async def test_calls_survive_a_reload_and_new_rules_apply(start_server: StartServer) -> None:
    with_rp = config_text().replace(
        '{ number = "4003", type = "voice-treatment-port" },',
        '{ number = "4003", type = "voice-treatment-port" },\n  { number = "5000", type = "routing-point" },',
    )
    server = await start_server(parse_config(with_rp))
    link = await RawLink.open(server.port)
    await link.login("L", name="IVR_A")
    await link.send(
        "C1",
        "<NewCall CallControlMode='Network' Version='4.0'><CalledNum>1</CalledNum></NewCall>",
    )
    assert [(await link.recv_doc())[1] for _ in range(2)] == [
        m.CallStatus(Event="Ringing"),
        m.CallStatus(Event="Established"),
    ]
    await link.send(
        "C1",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx><Node Name='k' Type='Str' Val='v'/></UDataEx></UDataSet>",
    )
    assert (await link.recv_doc())[1] == m.UDataResp(Result="Success", RequestId="1")
    routed = with_rp + '\n[[routing]]\ndn = "5000"\n[[routing.rules]]\nname = "all"\ndn = "7777"\n'
    report = server.reload(parse_config(routed))
    assert report is not None
    # the call is still there with its data, and the new router answers at once
    await link.send("C1", "<UDataGetAll><RequestId>2</RequestId></UDataGetAll>")
    _, got, _ = await link.recv_doc()
    assert isinstance(got, m.UDataResp) and got.Result == "Success" and got.UDataEx is not None
    assert [(n.Name, n.Val) for n in got.UDataEx if isinstance(n, Node)] == [("k", "v")]
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    assert (await link.recv_doc())[1] == m.RouteResponse(RouteType="Normal", Dest="7777")
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await link.send("C2", "<CallInfoReq/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
    assert server.service.calls.calls == {}
    await link.close()


async def test_the_heap_is_frozen_once_started_and_again_after_a_reload(
    start_server: StartServer,
) -> None:
    server = await start_server(parse_config(config_text()))
    try:
        server.settle_heap()  # what `serve` does once started
        assert gc.get_freeze_count() > 0
        old = weakref.ref(server.config)
        link = await RawLink.open(server.port)
        await link.login("L", name="IVR_A")
        server.reload(parse_config(config_text(flow="true")))
        assert gc.get_freeze_count() > 0  # frozen again, with the new configuration
        assert old() is None  # the old configuration was not kept by the frozen heap
        await link.close()
    finally:
        gc.unfreeze()
