"""Tests of a premise switch's configuration: ``type = "premise-csta"`` and ``[tservers.premise]``
(docs/configuration.md), its checks, the link settings the service builds the switch with, and
the switch at start and at a reload (added, removed, moved to another PBX, an In-Front switch put
behind one), connected by the runtime."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from ivr_server.config import (
    CstaDialect,
    ListenAddress,
    PeerAddress,
    PremiseConfig,
    ServerConfig,
    load_config,
    parse_config,
)
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.runtime import IvrServer
from ivr_server.service import IvrService, ReloadRefused
from ivr_server.service.switches import premise_settings
from ivr_server.session import IvrLink, Role
from ivr_server.switch.premise.settings import PremiseSettings
from ivr_server.switch.protocol import LinkedSwitch, LinkTarget, link_of
from ivr_server.wire import messages as m

REPO = Path(__file__).parents[2]

SWITCH = """
[[switches]]
name = "PBX"
type = "premise-csta"
dns = [
    { number = "3001", type = "voice-treatment-port" },
    { number = "3002", type = "voice-treatment-port" },
    { number = "3081", type = "extension" },
    { number = "4200", type = "virtual-routing-point" },
]
"""

TSERVER = """
[[tservers]]
name = "TS"
switch = "PBX"
"""

IVR = """
[[ivrs]]
name = "IVR"
tservers = ["TS"]
ports = [{ number = "1", dn = "3001" }, { number = "2", dn = "3002" }]
"""


def premise_file(link: str = 'address = "127.0.0.1:3022"\n', ivr: str = IVR) -> str:
    """A premise switch, its T-Server with ``[tservers.premise]`` holding ``link``, and ``ivr``."""
    return SWITCH + TSERVER + "[tservers.premise]\n" + link + ivr


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def said(text: str) -> dict[str, str]:
    """Location → message of the problems of ``text``."""
    return {problem.location: problem.message for problem in problems_of(text)}


# -- the link's values


def test_defaults() -> None:
    config = parse_config(premise_file())
    tserver = config.tserver_for_switch("PBX")
    assert tserver is not None and tserver.premise is not None
    link = tserver.premise
    assert str(link.address) == "127.0.0.1:3022"
    assert (link.application_id, link.user, link.password, link.dialect, link.tls) == (
        "ivr-server",
        None,
        None,
        "generic",
        False,
    )
    assert (link.session_duration, link.heartbeat, link.invoke_timeout) == (180.0, 60.0, 10.0)
    assert (link.reconnect_initial, link.reconnect_max) == (1.0, 30.0)
    assert link.defer_tlib_events and link.waiting_for_newcall_timeout == 30.0
    assert config.server.timers.wait_for_ringing == 60.0  # Behind's wait-for-ringing, shared


def test_every_value_written() -> None:
    link_text = """address = "[fd00::5]:3022"
application-id = "IVR-A"
user = "ivr"
password = "s3cret"
dialect = "openscape"
tls = true
session-duration = "5min"
heartbeat = 100
invoke-timeout = "8s"
reconnect-initial = "500ms"
reconnect-max = "1min"
defer-tlib-events = "off"
waiting-for-newcall-timeout = "10s"
"""
    config = parse_config(premise_file(link_text))
    tserver = config.tserver("TS")
    assert tserver is not None and tserver.premise is not None
    link = tserver.premise
    assert (link.address.host, link.address.port, str(link.address)) == (
        "fd00::5",
        3022,
        "[fd00::5]:3022",
    )
    assert (link.application_id, link.user, link.dialect, link.tls) == (
        "IVR-A",
        "ivr",
        "openscape",
        True,
    )
    assert link.password is not None and link.password.get_secret_value() == "s3cret"
    assert (link.session_duration, link.heartbeat, link.invoke_timeout) == (300.0, 100.0, 8.0)
    assert (link.reconnect_initial, link.reconnect_max) == (0.5, 60.0)
    assert not link.defer_tlib_events and link.waiting_for_newcall_timeout == 10.0


def test_the_dialects() -> None:
    assert typing.get_args(CstaDialect) == ("generic", "openscape", "avaya-dmcc", "mx-one")
    for dialect in typing.get_args(CstaDialect):
        link = PremiseConfig(address=PeerAddress(host="pbx", port=1), dialect=dialect)
        assert link.dialect == dialect


def test_the_password_is_never_shown() -> None:
    config = parse_config(premise_file('address = "pbx:3022"\nuser = "u"\npassword = "hunter2"\n'))
    tserver = config.tserver("TS")
    assert tserver is not None and isinstance(tserver.premise.password, SecretStr)  # type: ignore[union-attr]
    for shown in (repr(config), str(config), repr(tserver), str(tserver.model_dump())):
        assert "hunter2" not in shown
    assert "hunter2" not in tserver.model_dump_json()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("::1:3022", "write an IPv6 address in brackets, '[::1]:3022'"),
        (":3022", "the host is missing"),
        ("pbx:0", "port must be 1..65535"),
        ("pbx:99999", "port must be 1..65535"),
        ("pbx", "expected 'host:port' or '[ipv6]:port'"),
        ("[fd00::zz]:3022", "'fd00::zz' is not an IPv6 address"),
        ("300.1.1.1:3022", "'300.1.1.1' is not an IPv4 address"),
        ("bad_host!:3022", "is not a valid host name"),
    ],
)
def test_a_bad_address_says_what_is_wrong(address: str, message: str) -> None:
    problems = said(premise_file(f'address = "{address}"\n'))
    assert message in problems["tservers[0].premise.address"], problems


def test_the_address_as_a_table() -> None:
    config = parse_config(premise_file('address = { host = "::1", port = 3022 }\n'))
    tserver = config.tserver("TS")
    assert tserver is not None and str(tserver.premise.address) == "[::1]:3022"  # type: ignore[union-attr]
    problems = said(premise_file('address = { host = "fd00::zz", port = 3022 }\n'))
    assert "'fd00::zz' is not an IPv6 address" in problems["tservers[0].premise.address.host"]


def test_bad_values_each_located() -> None:
    link = """address = "pbx:3022"
dialect = "cisco"
heartbeat = 0
invoke-timeout = "-1s"
reconnect-max = "soon"
tls = "maybe"
application-id = ""
colour = "blue"
"""
    problems = said(premise_file(link))
    assert (
        "'generic', 'openscape', 'avaya-dmcc' or 'mx-one'"
        in problems["tservers[0].premise.dialect"]
    )
    assert problems["tservers[0].premise.heartbeat"] == "must be longer than zero"
    assert "invalid duration '-1s'" in problems["tservers[0].premise.invoke-timeout"]
    assert "tservers[0].premise.reconnect-max" in problems
    assert "tservers[0].premise.tls" in problems
    assert "tservers[0].premise.application-id" in problems
    assert problems["tservers[0].premise.colour"].startswith("unknown key 'colour'")
    assert "tservers[0].premise.address" not in problems


def test_the_values_must_agree_and_every_disagreement_is_said() -> None:
    link = """address = "pbx:3022"
password = "x"
session-duration = "60s"
heartbeat = "60s"
reconnect-initial = "40s"
"""
    message = said(premise_file(link))["tservers[0].premise"]
    assert "a password needs a user" in message
    assert "heartbeat (60 s) must be shorter than session-duration (60 s)" in message
    assert "reconnect-initial (40 s) is longer than reconnect-max (30 s)" in message
    assert "'x'" not in message  # the password is not echoed


def test_a_user_without_a_password_is_fine() -> None:
    parse_config(premise_file('address = "pbx:3022"\nuser = "ivr"\n'))


# -- how a premise switch fits with its T-Server and the IVRs


def test_a_premise_switch_needs_the_link() -> None:
    problems = said(SWITCH + TSERVER + IVR)
    assert problems == {
        "tservers[0]": "T-Server 'TS' serves premise switch 'PBX': give it a [tservers.premise]"
        " table with the PBX's address"
    }


def test_a_premise_switch_needs_a_tserver() -> None:
    problems = said(SWITCH + '[[ivrs]]\nname = "IVR"\ntservers = []\n')
    assert problems["switches[0]"] == (
        "premise switch 'PBX' has no T-Server: add a [[tservers]] entry with switch = 'PBX' and"
        " its [tservers.premise] link"
    )


def test_only_a_premise_switch_has_a_link() -> None:
    text = (
        '[[switches]]\nname = "SW"\ndns = [{ number = "1", type = "voice-treatment-port" }]\n'
        '[[tservers]]\nname = "TS"\nswitch = "SW"\n[tservers.premise]\naddress = "pbx:3022"\n'
    )
    assert said(text) == {
        "tservers[0].premise": "only the T-Server of a premise switch links to a PBX; switch 'SW'"
        ' is not one (type = "premise-csta")'
    }


def test_ports_on_a_premise_switch_are_voice_treatment_ports_and_used() -> None:
    ivr = '[[ivrs]]\nname = "IVR"\ntservers = ["TS"]\nports = [{ number = "1", dn = "3081" }]\n'
    problems = said(premise_file(ivr=ivr))
    assert problems == {
        "ivrs[0].ports[0].dn": "DN '3081' of premise switch 'PBX' is extension; an IVR port on a"
        " premise switch is a voice-treatment-port DN",
        "switches[0].dns[0]": "voice-treatment-port DN '3001' of premise switch 'PBX' is no IVR's"
        " port: list it in an IVR's ports, or remove it",
        "switches[0].dns[1]": "voice-treatment-port DN '3002' of premise switch 'PBX' is no IVR's"
        " port: list it in an IVR's ports, or remove it",
    }


def test_problems_found_with_invalid_neighbours_are_not_guessed() -> None:
    # The T-Server is invalid on its own: its link is not called missing, nor its switch unserved.
    problems = said(premise_file('address = "pbx"\n'))
    assert set(problems) == {"tservers[0].premise.address"}
    # An IVR invalid on its own may hold the ports: the DNs are not called unused.
    bad_ivr = IVR.replace('name = "IVR"', 'name = "IVR"\nenabled = "maybe"')
    assert set(said(premise_file(ivr=bad_ivr))) == {"ivrs[0].enabled"}


def test_in_code_as_in_toml() -> None:
    config = parse_config(premise_file())
    assert ServerConfig.model_validate(config.model_dump()) == config
    with pytest.raises(ConfigError):
        config.model_copy(update={"ivrs": ()})  # the DNs would be no IVR's ports


# -- the service builds a premise switch and links it; the runtime connects it


def test_behind_example_is_valid_and_as_the_site() -> None:
    config = load_config(REPO / "examples/behind.toml")
    (switch,) = config.switches
    assert (switch.name, switch.type) == ("SW_Site", "premise-csta")
    tserver = config.tserver_for_switch("SW_Site")
    assert tserver is not None and tserver.premise is not None
    assert str(tserver.premise.address) == "127.0.0.1:3022"
    ivr = config.ivr("IAdapter1")
    assert ivr is not None
    assert [(p.number, p.dn) for p in ivr.ports] == [("1", "3001"), ("2", "3002"), ("3", "3003")]
    vrps = [dn.number for dn in switch.dns if dn.type.value == "virtual-routing-point"]
    assert vrps == ["4200", "7900"]
    assert premise_settings(tserver.premise) == PremiseSettings(
        host="127.0.0.1",
        port=3022,
        application_id="ivr-server",
        dialect="generic",
        session_duration_s=180,
        heartbeat_s=60.0,
        invoke_timeout_s=10.0,
        reconnect_initial=1.0,
        reconnect_max=30.0,
    )


def test_the_link_settings_carry_every_value_and_the_password_in_clear() -> None:
    config = parse_config(
        premise_file(
            'address = "[fd00::5]:3122"\napplication-id = "ivr7"\nuser = "ivr"\n'
            'password = "hunter2"\ndialect = "openscape"\ntls = true\n'
            'session-duration = "90.4s"\nheartbeat = "30s"\ninvoke-timeout = "7s"\n'
            'reconnect-initial = "2s"\nreconnect-max = "20s"\n'
        )
    )
    tserver = config.tserver_for_switch("PBX")
    assert tserver is not None and tserver.premise is not None
    settings = premise_settings(tserver.premise)
    assert settings == PremiseSettings(
        host="fd00::5",
        port=3122,
        application_id="ivr7",
        user="ivr",
        password="hunter2",
        dialect="openscape",
        tls=True,
        session_duration_s=90,
        heartbeat_s=30.0,
        invoke_timeout_s=7.0,
        reconnect_initial=2.0,
        reconnect_max=20.0,
    )
    assert "hunter2" not in repr(settings)
    assert settings.target() == LinkTarget(
        host="fd00::5", port=3122, tls=True, reconnect_initial=2.0, reconnect_max=20.0
    )


def _linked(service: IvrService, name: str) -> LinkedSwitch:
    linked = link_of(service.switches[name])
    assert linked is not None, f"{name} is not a linked switch"
    return linked


def test_the_service_builds_a_premise_switch_that_wants_its_link() -> None:
    service = IvrService(parse_config(premise_file()))
    pbx = _linked(service, "PBX")
    assert pbx.tserver == "TS"
    assert pbx.link_wanted and not pbx.view.link_up  # up once the adapter has a session
    assert pbx.target == LinkTarget(host="127.0.0.1", port=3022)
    assert [dn.number for dn in pbx.view.dns()] == ["3001", "3002", "3081", "4200"]


IN_FRONT = """
[[switches]]
name = "SW"
dns = [{ number = "100", type = "voice-treatment-port" }]

[[tservers]]
name = "TS0"
switch = "SW"

[[ivrs]]
name = "IVR0"
tservers = ["TS0"]
ports = [{ number = "1", dn = "100" }]
"""

SW_BEHIND = IN_FRONT.replace('name = "SW"\n', 'name = "SW"\ntype = "premise-csta"\n', 1).replace(
    'switch = "SW"\n', 'switch = "SW"\n[tservers.premise]\naddress = "127.0.0.1:3022"\n'
)
"""IN_FRONT with its switch behind a PBX."""


def test_a_reload_adds_links_and_removes_a_premise_switch() -> None:
    running = parse_config(IN_FRONT)
    service = IvrService(running)
    report = service.reload(parse_config(IN_FRONT + premise_file()))
    assert report.switches_added == ("PBX",) and service.config is not running
    pbx = _linked(service, "PBX")
    assert pbx.link_wanted
    assert link_of(service.switches["SW"]) is None  # the In-Front switch stays as it was
    report = service.reload(parse_config(IN_FRONT))
    assert report.switches_removed == ("PBX",)
    assert "PBX" not in service.switches
    assert not pbx.link_wanted  # its TCloseLink: the adapter closes the socket


def test_a_reload_that_moves_a_switch_to_another_pbx_builds_it_anew() -> None:
    service = IvrService(parse_config(premise_file()))
    before = _linked(service, "PBX")
    report = service.reload(parse_config(premise_file('address = "127.0.0.1:3122"\n')))
    after = _linked(service, "PBX")
    assert after is not before and not before.link_wanted
    assert after.target.port == 3122 and after.link_wanted
    assert (report.switches_added, report.switches_removed) == (("PBX",), ("PBX",))
    unchanged = service.reload(parse_config(premise_file('address = "127.0.0.1:3122"\n')))
    assert service.switches["PBX"] is after and not unchanged.switches_added


def test_a_switch_that_goes_behind_a_pbx_strands_its_calls() -> None:
    service = IvrService(parse_config(IN_FRONT))
    session = service.open_session("127.0.0.1:9", IvrLink(Role.SERVER, now=0.0), 0.0)
    service.handle(session, "L", m.LoginReq(Version="4.0", ClientName="IVR0"), 0.0)
    service.handle(session, "C1", m.NewCall(CallControlMode="Network", CalledNum="1"), 0.0)
    assert [c.call_id for c in service.calls.calls.values()] == ["C1"]
    with pytest.raises(ReloadRefused) as refused:
        service.reload(parse_config(SW_BEHIND))
    assert [c.reason for c in refused.value.stranded] == [
        "switch SW is rebuilt (its type or its PBX link changes)"
    ]
    assert link_of(service.switches["SW"]) is None
    report = service.reload(parse_config(SW_BEHIND), force=True)
    assert report.calls_stranded == 1 and not service.calls.calls
    assert _linked(service, "SW").link_wanted


def test_the_runtime_connects_a_premise_switch_a_reload_brings_and_closes_it_after() -> None:
    running = parse_config(IN_FRONT)

    async def scenario() -> tuple[str, int, bool]:
        accepted: list[asyncio.StreamReader] = []
        closed = asyncio.Event()

        async def pbx(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(reader)
            while await reader.read(65536):
                pass
            closed.set()
            writer.close()

        listener = await asyncio.start_server(pbx, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        server = IvrServer(running, listen=(ListenAddress(host="127.0.0.1", port=0),))
        await server.start()
        try:
            outcome = server.request_reload(
                parse_config(IN_FRONT + premise_file(f'address = "127.0.0.1:{port}"\n'))
            )
            link = server.links.get("PBX")
            assert link is not None
            for _ in range(500):
                if accepted:
                    break
                await asyncio.sleep(0.01)
            server.request_reload(running)  # the switch goes: its link is closed
            await asyncio.wait_for(closed.wait(), 5.0)
            return outcome.result, len(accepted), link.running
        finally:
            await server.stop()
            listener.close()

    result, connections, running_after = asyncio.run(scenario())
    assert result == "applied" and connections == 1 and not running_after
