"""Tests of ivr_server.config: the default and example files, every check, every notation."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ivr_server.config import (
    AutoLogin,
    DnConfig,
    DnType,
    IvrConfig,
    ListenAddress,
    PortConfig,
    ServerConfig,
    ServerOptions,
    SwitchConfig,
    TcpKeepAlive,
    Timers,
    TServerConfig,
    default_config,
    default_config_path,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
)
from ivr_server.config.base import ConfigModel
from ivr_server.errors import ConfigError, ConfigProblem

REPO = Path(__file__).parents[2]

# A small valid configuration that the check tests extend. TOML lets `[[switches]]`,
# `[[tservers]]` and `[[ivrs]]` be appended after it, so each case only adds what it needs.
BASE = """
[[switches]]
name = "SW"
dns = [
    { number = "100", type = "voice-treatment-port" },
    { number = "101", type = "voice-treatment-port" },
    { number = "102", type = "extension" },
    { number = "200", type = "routing-point" },
    { number = "300", type = "acd-queue" },
    { number = "400", type = "extension" },
]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR"
tservers = ["TS"]
ports = [{ number = "1", dn = "100" }]
"""

# A second switch with its own T-Server, for the cases that need two.
SECOND_SWITCH = """
[[switches]]
name = "SW2"
dns = [{ number = "100", type = "voice-treatment-port" }, { number = "300", type = "acd-queue" }]

[[tservers]]
name = "TS2"
switch = "SW2"
"""


def problems_of(text: str) -> list[ConfigProblem]:
    """The problems ``parse_config`` reports for ``text`` (which must be invalid)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.source == "<string>"
    return caught.value.problems


def where(problems: list[ConfigProblem]) -> list[str]:
    return [problem.location for problem in problems]


# --------------------------------------------------------------------------------------------
# The shipped files


def test_base_fixture_is_valid() -> None:
    config = parse_config(BASE)
    assert config.ivr("IVR") is not None
    assert parse_config(BASE + SECOND_SWITCH).tserver_for_switch("SW2") is not None


def test_default_config_shape() -> None:
    config = default_config()
    assert [str(address) for address in config.server.listen] == ["127.0.0.1:3021"]
    assert config.server == ServerOptions()  # default.toml writes out exactly the defaults

    (switch,) = config.switches
    assert (switch.name, switch.type) == ("SW_InFront", "in-front")
    by_type: dict[DnType, list[str]] = {}
    for dn in switch.dns:
        by_type.setdefault(dn.type, []).append(dn.number)
    assert by_type == {
        DnType.VOICE_TREATMENT_PORT: [str(n) for n in range(4001, 4033)]
        + ["4101", "4102", "4103", "4104"],
        DnType.ROUTING_POINT: ["5000", "5001"],
        DnType.ACD_QUEUE: ["6000"],
        DnType.EXTENSION: ["7001", "7002", "7003", "7004"],
    }

    assert config.tservers == (TServerConfig(name="TServer_IVR", switch="SW_InFront"),)
    assert config.tserver_for_switch("SW_InFront") == config.tserver("TServer_IVR")

    ivr_1 = config.ivr("IVR_1")
    assert ivr_1 is not None
    assert ivr_1.enabled and not ivr_1.legacy_mode
    assert ivr_1.tservers == ("TServer_IVR",)
    assert ivr_1.data_transport == (("socket_activity_timer", "20000"), ("site", "demo"))
    assert [(p.number, p.dn) for p in ivr_1.ports] == [
        (str(n), str(4000 + n)) for n in range(1, 33)
    ]
    assert all(p.enabled and p.auto_login is None and p.switch is None for p in ivr_1.ports)

    ivr_2 = config.ivr("IVR_2")
    assert ivr_2 is not None
    assert ivr_2.legacy_mode and ivr_2.data_transport == ()
    assert [(p.number, p.dn) for p in ivr_2.ports] == [(str(n), str(4100 + n)) for n in range(1, 5)]
    assert [p.auto_login for p in ivr_2.ports] == [
        AutoLogin(agent_id=str(9100 + n), queue="6000", set_ready=True) for n in range(1, 5)
    ]


def test_default_config_is_cached_and_named() -> None:
    assert default_config() is default_config()
    assert default_config_path() == "built-in default (ivr_server/config/default.toml)"


def test_conformance_example_loads() -> None:
    config = load_config(REPO / "examples/conformance.toml")
    assert config.server.version_string == "IVR Server:8.1.001.01"
    assert [str(a) for a in config.server.listen] == ["127.0.0.1:3021"]
    ivr = config.ivr("IAdapter1")
    assert ivr is not None
    assert not ivr.legacy_mode and ivr.data_transport == ()
    assert [(p.number, p.dn) for p in ivr.ports] == [(str(n), str(3000 + n)) for n in range(1, 9)]
    for port in ivr.ports:
        found = config.port_dn(ivr, port)
        assert found is not None and found[0].name == "SW_Site"
    types = {dn.number: dn.type for dn in config.switches[0].dns}
    assert types["4200"] == types["7900"] == DnType.ROUTING_POINT
    assert types["3085"] == DnType.ACD_QUEUE
    assert {n for n, t in types.items() if t is DnType.EXTENSION} >= {
        "3081",
        "3082",
        "3084",
        "8000",
    }
    assert config.tserver_for_switch("SW_Site") == config.tserver("TServer_IVR")


def test_empty_file_is_a_server_without_objects() -> None:
    config = parse_config("")
    assert config == ServerConfig()
    assert (config.ivrs, config.switches, config.tservers) == ((), (), ())


# --------------------------------------------------------------------------------------------
# Cross-reference checks: one case per rule, each must yield exactly that one problem.

CROSS_CHECKS: list[tuple[str, str, str, str]] = [
    # (case id, TOML appended to BASE, expected location, expected words in the message)
    (
        "duplicate switch name",
        '[[switches]]\nname = "SW"\n',
        "switches[1].name",
        "duplicate switch name 'SW'",
    ),
    (
        "duplicate T-Server name",
        SECOND_SWITCH.replace('"TS2"', '"TS"'),
        "tservers[1].name",
        "duplicate T-Server name 'TS'",
    ),
    (
        "duplicate IVR name",
        '[[ivrs]]\nname = "IVR"\ntservers = ["TS"]\n',
        "ivrs[1].name",
        "duplicate IVR name 'IVR'",
    ),
    (
        "duplicate DN on a switch",
        '[[switches]]\nname = "X"\ndns = [{ number = "1", type = "extension" },'
        ' { number = "1", type = "acd-queue" }]\n',
        "switches[1].dns[1].number",
        "duplicate DN '1' on switch 'X'",
    ),
    (
        "alias used twice",
        '[[switches]]\nname = "X"\ndns = [{ number = "1", type = "extension", alias = "a" },'
        ' { number = "2", type = "extension", alias = "a" }]\n',
        "switches[1].dns[1].alias",
        "duplicate alias 'a'",
    ),
    (
        "alias is another DN's number",
        '[[switches]]\nname = "X"\ndns = [{ number = "1", type = "extension" },'
        ' { number = "2", type = "extension", alias = "1" }]\n',
        "switches[1].dns[1].alias",
        "number of another DN",
    ),
    (
        "T-Server names an unknown switch",
        '[[tservers]]\nname = "TX"\nswitch = "NoSuchSwitch"\n',
        "tservers[1].switch",
        "unknown switch 'NoSuchSwitch'",
    ),
    (
        "two T-Servers for one switch",
        '[[tservers]]\nname = "TS_bis"\nswitch = "SW"\n',
        "tservers[1].switch",
        "already served",
    ),
    (
        "IVR names an unknown T-Server",
        '[[ivrs]]\nname = "I2"\ntservers = ["NoSuchTServer"]\n',
        "ivrs[1].tservers[0]",
        "unknown T-Server 'NoSuchTServer'",
    ),
    (
        "IVR lists a T-Server twice",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS", "TS"]\n',
        "ivrs[1].tservers[1]",
        "listed twice",
    ),
    (
        "IVR with ports but no T-Server",
        '[[ivrs]]\nname = "I2"\ntservers = []\nports = [{ number = "1", dn = "101" }]\n',
        "ivrs[1].tservers",
        "no T-Server",
    ),
    (
        "duplicate port number in an IVR",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\n'
        'ports = [{ number = "7", dn = "101" }, { number = "7", dn = "102" }]\n',
        "ivrs[1].ports[1].number",
        "duplicate port number '7'",
    ),
    (
        "port DN not on its switch",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\nports = [{ number = "1", dn = "999" }]\n',
        "ivrs[1].ports[0].dn",
        "'999' is not a DN of switch 'SW'",
    ),
    (
        "port DN is a routing point",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\nports = [{ number = "1", dn = "200" }]\n',
        "ivrs[1].ports[0].dn",
        "is a routing-point",
    ),
    (
        "port DN is an ACD queue",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\nports = [{ number = "1", dn = "300" }]\n',
        "ivrs[1].ports[0].dn",
        "is an acd-queue",
    ),
    (
        "one DN used by two ports of different IVRs",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\nports = [{ number = "1", dn = "100" }]\n',
        "ivrs[1].ports[0].dn",
        "already the DN of the port at ivrs[0].ports[0]",
    ),
    (
        "port switch unknown",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\n'
        'ports = [{ number = "1", dn = "101", switch = "Nowhere" }]\n',
        "ivrs[1].ports[0].switch",
        "unknown switch 'Nowhere'",
    ),
    (
        "port switch not served by the IVR's T-Servers",
        SECOND_SWITCH + '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\n'
        'ports = [{ number = "1", dn = "100", switch = "SW2" }]\n',
        "ivrs[1].ports[0].switch",
        "not served by any of IVR 'I2'",
    ),
    (
        "port switch required with several T-Servers",
        SECOND_SWITCH + '[[ivrs]]\nname = "I2"\ntservers = ["TS", "TS2"]\n'
        'ports = [{ number = "1", dn = "101" }]\n',
        "ivrs[1].ports[0].switch",
        "several T-Servers",
    ),
    (
        "auto-login queue is not a DN",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\n'
        'ports = [{ number = "1", dn = "101", auto-login = { agent-id = "9", queue = "555" } }]\n',
        "ivrs[1].ports[0].auto-login.queue",
        "queue '555' is not a DN on switch 'SW'",
    ),
    (
        "auto-login queue is not an ACD queue",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\n'
        'ports = [{ number = "1", dn = "101", auto-login = { agent-id = "9", queue = "400" } }]\n',
        "ivrs[1].ports[0].auto-login.queue",
        "an extension, not an acd-queue",
    ),
    (
        "one agent auto-logged-in on two ports",
        '[[ivrs]]\nname = "I2"\ntservers = ["TS"]\nports = [\n'
        '  { number = "1", dn = "101", auto-login = { agent-id = "9" } },\n'
        '  { number = "2", dn = "102", auto-login = { agent-id = "9" } },\n]\n',
        "ivrs[1].ports[1].auto-login.agent-id",
        "agent '9' is already auto-logged-in",
    ),
    (
        "listen address syntax",
        '[server]\nlisten = ["127.0.0.1"]\n',
        "server.listen[0]",
        "expected 'host:port'",
    ),
    (
        "listen IPv6 without brackets",
        '[server]\nlisten = ["::1:3021"]\n',
        "server.listen[0]",
        "in brackets",
    ),
    (
        "listen port out of range",
        '[server]\nlisten = ["127.0.0.1:70000"]\n',
        "server.listen[0]",
        "port must be 0..65535",
    ),
    (
        "listen address twice",
        '[server]\nlisten = ["127.0.0.1:3021", "127.0.0.1:3021"]\n',
        "server.listen",
        "listed twice",
    ),
    (
        "no listen address",
        "[server]\nlisten = []\n",
        "server.listen",
        "at least one address",
    ),
    (
        "client-list syntax",
        '[server]\nclient-list = ["10.0.0.1:*", "10.0.0.2"]\n',
        "server.client-list[1]",
        "'host:port' or 'host:*'",
    ),
    (
        "client-list port zero",
        '[server]\nclient-list = ["10.0.0.1:0"]\n',
        "server.client-list[0]",
        "port must be 1..65535",
    ),
    (
        "client-list bad host",
        '[server]\nclient-list = ["bad_host!:*"]\n',
        "server.client-list[0]",
        "not a valid host name",
    ),
]


@pytest.mark.parametrize(
    ("text", "location", "words"),
    [pytest.param(text, location, words, id=name) for name, text, location, words in CROSS_CHECKS],
)
def test_each_check_reports_one_problem_at_its_location(
    text: str, location: str, words: str
) -> None:
    (problem,) = problems_of(BASE + "\n" + text)
    assert problem.location == location
    assert words in problem.message


def test_disabled_objects_are_checked_too() -> None:
    text = BASE + '[[ivrs]]\nname = "I2"\nenabled = false\ntservers = ["TS"]\n'
    text += 'ports = [{ number = "1", dn = "100", enabled = false }]\n'
    assert where(problems_of(text)) == ["ivrs[1].ports[0].dn"]


def test_ports_may_name_their_switch_when_the_ivr_has_several_tservers() -> None:
    text = BASE + SECOND_SWITCH + '[[ivrs]]\nname = "I2"\ntservers = ["TS", "TS2"]\nports = [\n'
    text += '  { number = "1", dn = "101", switch = "SW" },\n'
    text += '  { number = "2", dn = "100", switch = "SW2", auto-login = { agent-id = "1", queue = "300" } },\n]\n'
    config = parse_config(text)
    ivr = config.ivr("I2")
    assert ivr is not None
    assert [config.port_switch_name(ivr, p) for p in ivr.ports] == ["SW", "SW2"]
    found = config.port_dn(ivr, ivr.ports[1])
    assert found is not None and (found[0].name, found[1].number) == ("SW2", "100")


def test_cross_checks_also_guard_models_built_in_python() -> None:
    switch = SwitchConfig(name="SW", dns=(DnConfig(number="1", type=DnType.ROUTING_POINT),))
    with pytest.raises(ConfigError) as caught:
        ServerConfig(
            switches=(switch,),
            tservers=(TServerConfig(name="TS", switch="SW"),),
            ivrs=(
                IvrConfig(name="I", tservers=("TS", "TX"), ports=(PortConfig(number="1", dn="1"),)),
            ),
        )
    assert where(caught.value.problems) == ["ivrs[0].tservers[1]", "ivrs[0].ports[0].switch"]


# --------------------------------------------------------------------------------------------
# Reporting: all problems at once, locations, messages


def test_several_problems_are_reported_at_once() -> None:
    text = (
        BASE
        + """
[server]
log-level = "chatty"
bogus = 1

[server.timers]
router-timeout = "soon"

[[tservers]]
name = "TX"
switch = "Nowhere"

[[ivrs]]
name = "I2"
tservers = ["TS"]
ports = [{ number = "1", dn = "200" }, { number = "2", dn = "101", enabled = "perhaps" }]

[[ivrs]]
name = "I3"
tservers = ["NoSuchTServer"]
"""
    )
    assert where(problems_of(text)) == [
        "server.log-level",
        "server.timers.router-timeout",
        "server.bogus",
        "ivrs[1].ports[1].enabled",
        # Cross-references among the objects valid on their own (ivrs[1] is not):
        "tservers[1].switch",
        "ivrs[2].tservers[0]",
    ]


def test_references_to_invalid_objects_are_not_called_unknown() -> None:
    text = (
        BASE
        + """
[[switches]]
name = "Broken"
type = "premise"

[[tservers]]
name = "TB"
switch = "Broken"

[[ivrs]]
name = "I2"
tservers = ["TB"]
ports = [{ number = "1", dn = "1" }]
"""
    )
    (problem,) = problems_of(text)
    assert problem.location == "switches[1].type"
    assert problem.message == "input should be 'in-front' or 'premise-csta', got 'premise'"


def test_problem_messages_are_plain_words() -> None:
    text = BASE.replace('name = "IVR"', "name = 12").replace('tservers = ["TS"]', "")
    problems = problems_of(text)
    assert [str(p) for p in problems] == [
        "ivrs[0].name: input should be a valid string, got 12",
        "ivrs[0].tservers: required key is missing",
    ]


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        (
            "extras = {}",
            "extras",
            "unknown key 'extras'; allowed here: server, switches, tservers, ivrs",
        ),
        ("[server]\nversion = 'x'", "server.version", "did you mean 'version-string'?"),
        (
            "[server.timers]\nrouter_timeot = 1",
            "server.timers.router_timeot",
            "did you mean 'router-timeout'?",
        ),
        (
            BASE.replace('dn = "100" }', 'dn = "100", colour = "red" }'),
            "ivrs[0].ports[0].colour",
            "unknown key 'colour'",
        ),
        (
            BASE.replace(
                'dn = "100" }', 'dn = "100", auto-login = { agent-id = "1", pin = "0" } }'
            ),
            "ivrs[0].ports[0].auto-login.pin",
            "unknown key 'pin'",
        ),
    ],
)
def test_unknown_keys_are_rejected_with_their_location(
    text: str, location: str, message: str
) -> None:
    (problem,) = problems_of(text)
    assert problem.location == location
    assert message in problem.message


def test_snake_case_keys_are_accepted_too() -> None:
    config = parse_config(
        '[server]\nversion_string = "X"\n[server.timers]\nrouter_timeout = "1s"\n'
    )
    assert config.server.version_string == "X" and config.server.timers.router_timeout == 1.0


@pytest.mark.parametrize(
    ("text", "location", "words"),
    [
        ("[server]\nlisten = [\n", "line 3, column 1", "toml syntax error"),
        ("a = 1\nb = \n", "line 2, column 5", "invalid value"),
        (
            '[server]\nlog-level = "INFO"\nlog-level = "DEBUG"\n',
            "line 3, column 20",
            "cannot overwrite",
        ),
        ("x = [1,", "line 1, column 8", "at the end of the file"),
    ],
)
def test_toml_syntax_errors_have_line_and_column(text: str, location: str, words: str) -> None:
    (problem,) = problems_of(text)
    assert problem.location == location
    assert words in problem.message.lower()


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlog-level = "LOUD"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"invalid configuration {path}:\n  server.log-level: ")


def test_load_config_reports_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert "cannot read the file" in caught.value.problems[0].message

    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nversion-string = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert where(caught.value.problems) == ["line 2, column 22"]

    path.write_bytes(b'\xef\xbb\xbf[server]\nversion-string = "ok"\n')  # a BOM is tolerated
    assert load_config(path).server.version_string == "ok"


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("value", "bare_unit", "seconds"),
    [
        ("4s", "ms", 4.0),
        ("500ms", "ms", 0.5),
        ("1min", "ms", 60.0),
        ("1 min", "ms", 60.0),
        ("8h", "ms", 28800.0),
        ("1d", "ms", 86400.0),
        ("2.5s", "ms", 2.5),
        ("4S", "ms", 4.0),
        (" 4s ", "ms", 4.0),
        ("4000", "ms", 4.0),
        (4000, "ms", 4.0),
        (1500.0, "ms", 1.5),
        (0, "ms", 0.0),
        ("30", "s", 30.0),
        (30, "s", 30.0),
        ("250ms", "s", 0.25),
    ],
)
def test_parse_duration(
    value: str | int | float, bare_unit: typing.Literal["ms", "s"], seconds: float
) -> None:
    assert parse_duration(value, bare_unit=bare_unit) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "s",
        "-1s",
        "4 fortnights",
        "1e3",
        "4s 2ms",
        "1.s",
        ".5s",
        True,
        -5,
        float("inf"),
        float("nan"),
    ],
)
def test_parse_duration_refuses(value: str | int | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@given(st.integers(min_value=1, max_value=10**10))
def test_format_duration_round_trips(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_duration_picks_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (4.0, 0.5, 60.0, 28800.0, 86400.0, 90.0, -1.0)] == [
        "4s",
        "500ms",
        "1min",
        "8h",
        "1d",
        "90s",
        "-1s",
    ]


def test_timers_in_toml_take_milliseconds_or_units() -> None:
    text = """
[server.timers]
router-timeout = 4000
call-timeout = "8h"
wait-for-ringing = "1 min"
orphan-call-timeout = 1500.5
stat-timeout = "3000"
registration-timeout = "500ms"
"""
    timers = parse_config(text).server.timers
    assert timers == Timers(
        router_timeout=4.0,
        call_timeout=28800.0,
        wait_for_ringing=60.0,
        orphan_call_timeout=1.5005,
        stat_timeout=3.0,
        registration_timeout=0.5,
    )


def test_timers_built_in_python_take_seconds() -> None:
    assert Timers(router_timeout=0.05).router_timeout == 0.05
    assert Timers(router_timeout="2s").router_timeout == 2.0


@pytest.mark.parametrize("value", ["0", "-4000", "'0s'", "'-4s'", "true", "'later'", "[1]"])
def test_timers_must_be_positive_durations(value: str) -> None:
    (problem,) = problems_of(f"[server.timers]\nretry-timeout = {value}\n")
    assert problem.location == "server.timers.retry-timeout"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("-1", -1.0), ("'-1'", -1.0), ("30", 30.0), ("2.5", 2.5), ("'20s'", 20.0), ("'1min'", 60.0)],
)
def test_keep_alive_interval_takes_seconds(value: str, seconds: float) -> None:
    config = parse_config(f"[server]\nkeep-alive-interval = {value}\n")
    assert config.server.keep_alive_interval == seconds


@pytest.mark.parametrize("value", ["0", "-2", "'0s'", "true", "'soon'"])
def test_keep_alive_interval_refuses(value: str) -> None:
    (problem,) = problems_of(f"[server]\nkeep-alive-interval = {value}\n")
    assert problem.location == "server.keep-alive-interval"


def test_malformed_window_takes_seconds() -> None:
    assert parse_config("[server]\nmalformed-window = 5\n").server.malformed_window == 5.0
    assert parse_config("[server]\nmalformed-window = '500ms'\n").server.malformed_window == 0.5


# --------------------------------------------------------------------------------------------
# Values and notations


def test_data_transport_keeps_order_and_stringifies() -> None:
    text = (
        BASE
        + """
[ivrs.data-transport]
zeta = "z"
alpha = 1
mid = true
off = false
ratio = 0.5
when = 2014-11-27
"""
    )
    ivr = parse_config(text).ivrs[0]
    assert ivr.data_transport == (
        ("zeta", "z"),
        ("alpha", "1"),
        ("mid", "true"),
        ("off", "false"),
        ("ratio", "0.5"),
        ("when", "2014-11-27"),
    )


def test_data_transport_refuses_tables_and_arrays() -> None:
    (problem,) = problems_of(BASE + "\n[ivrs.data-transport]\nlist = [1, 2]\n")
    assert problem.location == "ivrs[0].data-transport"
    assert "option 'list'" in problem.message


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("127.0.0.1:3021", "127.0.0.1", 3021, "127.0.0.1:3021"),
        ("[::1]:3021", "::1", 3021, "[::1]:3021"),
        (":3021", "0.0.0.0", 3021, "0.0.0.0:3021"),
        ("localhost:0", "localhost", 0, "localhost:0"),
        (
            "ivr-server.example.com:9000",
            "ivr-server.example.com",
            9000,
            "ivr-server.example.com:9000",
        ),
    ],
)
def test_listen_addresses(text: str, host: str, port: int, shown: str) -> None:
    (address,) = parse_config(f'[server]\nlisten = ["{text}"]\n').server.listen
    assert address == ListenAddress(host=host, port=port)
    assert str(address) == shown


def test_listen_addresses_as_tables_are_checked_too() -> None:
    text = '[server]\nlisten = [{ host = "::1", port = 1 }, { host = "no such host", port = 2 }]\n'
    (problem,) = problems_of(text)
    assert problem.location == "server.listen[1].host"
    assert "not a valid host name" in problem.message


def test_client_list_is_kept_as_written() -> None:
    entries = ["10.0.0.1:*", "ivr1.example.com:4000", "[fe80::1]:*"]
    config = parse_config(f"[server]\nclient-list = {entries!r}\n".replace("'", '"'))
    assert config.server.client_list == tuple(entries)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("'on'", True), ("'OFF'", False), ("false", False)]
)
def test_flow_control_takes_booleans_and_on_off(value: str, expected: bool) -> None:
    assert parse_config(f"[server]\nflow-control = {value}\n").server.flow_control is expected


def test_names_of_levels_and_encodings_are_normalised() -> None:
    text = '[server]\nlog-level = "debug"\noutput-encoding = "utf-8"\n'
    text += BASE.replace('tservers = ["TS"]', 'tservers = ["TS"]\noutput-encoding = "utf-8"')
    config = parse_config(text)
    assert config.server.log_level == "DEBUG"
    assert config.server.output_encoding == "UTF-8"
    assert config.ivrs[0].output_encoding == "UTF-8"
    (problem,) = problems_of('[server]\noutput-encoding = "UTF-16"\n')
    assert problem.location == "server.output-encoding"


def test_numbers_may_be_toml_integers() -> None:
    text = BASE.replace(
        '{ number = "1", dn = "100" }',
        "{ number = 1, dn = 100, auto-login = { agent-id = 7, queue = 300 } }",
    )
    port = parse_config(text).ivrs[0].ports[0]
    assert (port.number, port.dn) == ("1", "100")
    assert port.auto_login == AutoLogin(agent_id="7", queue="300")


def test_port_numbers_are_compared_exactly() -> None:
    text = BASE.replace(
        'ports = [{ number = "1", dn = "100" }]',
        'ports = [{ number = "1", dn = "100" }, { number = "01", dn = "101" }]',
    )
    ivr = parse_config(text).ivrs[0]
    ports = [ivr.port(n) for n in ("1", "01", "001")]
    assert [None if p is None else p.dn for p in ports] == ["100", "101", None]


# --------------------------------------------------------------------------------------------
# The Python API


def test_lookups() -> None:
    config = parse_config(BASE + SECOND_SWITCH)
    assert config.ivr("IVR") is config.ivrs[0]
    assert config.ivr("ivr") is None  # names are case-sensitive
    assert config.switch("SW2") is config.switches[1]
    assert config.switch("nope") is None
    assert config.tserver("TS2") is config.tservers[1]
    assert config.tserver("nope") is None
    assert config.tserver_for_switch("SW") is config.tservers[0]
    assert config.tserver_for_switch("nope") is None
    found = config.find_dn("SW2", "100")
    assert (
        found is not None
        and found[0] is config.switches[1]
        and found[1].type is DnType.VOICE_TREATMENT_PORT
    )
    assert config.find_dn("SW", "999") is None
    assert config.find_dn("nope", "100") is None
    ivr = config.ivrs[0]
    port = ivr.port("1")
    assert port is not None and ivr.port("2") is None
    assert config.port_dn(ivr, port) == config.find_dn("SW", "100")


def test_models_are_frozen_and_hashable() -> None:
    config = default_config()
    with pytest.raises(ValidationError):
        config.server.flow_control = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.ivrs[0].ports[0].dn = "1"  # type: ignore[misc]
    assert isinstance(config.ivrs[0].ports, tuple)
    again = parse_config(_default_text())
    assert again == config and hash(again) == hash(config)


def test_model_copy_validates_and_rebuilds_lookups() -> None:
    config = default_config()
    server = config.server.model_copy(update={"listen": (ListenAddress(host="0.0.0.0", port=0),)})
    copy = config.model_copy(update={"server": server, "ivrs": config.ivrs[1:]})
    assert [str(a) for a in copy.server.listen] == ["0.0.0.0:0"]
    assert copy.server.timers == config.server.timers  # seconds stay seconds
    assert copy.ivr("IVR_1") is None and copy.ivr("IVR_2") is copy.ivrs[0]
    assert config.ivr("IVR_1") is config.ivrs[0]  # the original is untouched
    with pytest.raises(ConfigError) as caught:
        config.model_copy(update={"tservers": ()})
    assert where(caught.value.problems) == ["ivrs[0].tservers[0]", "ivrs[1].tservers[0]"]
    with pytest.raises(ValidationError):
        config.server.model_copy(update={"keep_alive_tries": 0})


def _default_text() -> str:
    return (REPO / "src/ivr_server/config/default.toml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Documentation stays complete


def _all_models() -> list[type[BaseModel]]:
    """Every model of the configuration (each section's module derives its models from
    ``ConfigModel``), so that a model added anywhere is held to the rules below."""
    models: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [ConfigModel]
    while pending:
        for model in pending.pop().__subclasses__():
            models.append(model)
            pending.append(model)
    return sorted(models, key=lambda model: model.__name__)


def test_the_models_are_found() -> None:
    assert {ServerConfig, ServerOptions, Timers, TcpKeepAlive, ListenAddress} <= set(_all_models())
    assert {SwitchConfig, DnConfig, TServerConfig, IvrConfig, PortConfig, AutoLogin} <= set(
        _all_models()
    )


@pytest.mark.parametrize("model", _all_models(), ids=lambda m: m.__name__)
def test_every_field_has_a_docstring(model: type[BaseModel]) -> None:
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []


def test_docs_name_every_key() -> None:
    docs = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    keys = {
        field.alias or name for model in _all_models() for name, field in model.model_fields.items()
    }
    missing = sorted(key for key in keys if not re.search(rf"`{re.escape(key)}`", docs))
    assert missing == []
