"""What a reload changed, in words (the log line and ``ivr-server reload``; issue 20 item 8)."""

from __future__ import annotations

from ivr_server.config import parse_config
from ivr_server.service import ReloadReport
from ivr_server.service.reload import describe_changes

BASE = """
[server]
listen = ["127.0.0.1:3021"]
{server}

[api]
token = "{token}"

[[switches]]
name = "SW"
dns = [{dns}]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR_A"
tservers = ["TS"]
legacy-mode = {legacy}
ports = [{ports}]
{more}
"""

DNS = ", ".join(f'{{ number = "{n}", type = "voice-treatment-port" }}' for n in range(4001, 4006))
PORTS = '{ number = "1", dn = "4001" }, { number = "2", dn = "4002" }'


def config(
    server: str = "",
    token: str = "t1",
    dns: str = DNS,
    legacy: str = "false",
    ports: str = PORTS,
    more: str = "",
) -> str:
    return BASE.format(server=server, token=token, dns=dns, legacy=legacy, ports=ports, more=more)


def changes(before: str, after: str) -> tuple[str, ...]:
    return describe_changes(parse_config(before), parse_config(after))


def test_the_same_file_changes_nothing() -> None:
    assert changes(config(), config()) == ()
    report = ReloadReport(0, 0, (), (), False)
    assert report.describe() == "nothing changed"


def test_ivrs_and_ports_added_removed_and_changed() -> None:
    ivr_b = '[[ivrs]]\nname = "IVR_B"\ntservers = ["TS"]\nports = [{ number = "1", dn = "4005" }]'
    assert changes(config(), config(more=ivr_b)) == ("IVR IVR_B added",)
    assert changes(config(more=ivr_b), config()) == ("IVR IVR_B removed",)
    three = PORTS + ', { number = "3", dn = "4003" }'
    assert changes(config(), config(ports=three, legacy="true")) == (
        "IVR IVR_A changed (port 3 added; legacy-mode false -> true)",
    )
    moved = '{ number = "1", dn = "4004" }'
    assert changes(config(), config(ports=moved)) == (
        "IVR IVR_A changed (port 2 removed; port 1 changed)",
    )
    fewer_dns = ", ".join(
        f'{{ number = "{n}", type = "voice-treatment-port" }}' for n in (4001, 4002)
    )
    assert changes(config(), config(dns=fewer_dns)) == (
        "switch SW changed (DNs 4003, 4004, 4005 removed)",
    )


def test_options_with_values_durations_secrets_and_start_only() -> None:
    after = config(
        server='flow-control = "on"\ndrain-time = "90s"\nlisten-backlog = 100\n'
        '[server.timers]\ncall-timeout = "2h"\nrouter-timeout = 500',
        token="t2",
    )
    assert changes(config(), after) == (
        "server.flow-control false -> true",
        "server.listen-backlog 4096 -> 100 (read at start: applies when the server is next "
        "started)",
        "server.timers.router-timeout 4s -> 500ms",
        "server.timers.call-timeout 8h -> 2h",
        "server.drain-time 10s -> 90s",
        "api.token changed",  # never its value
    )


def test_the_report_in_words() -> None:
    report = ReloadReport(
        ports_unavailable=1,
        ports_available=3,
        switches_added=(),
        switches_removed=(),
        flow_control_changed=False,
        calls_stranded=2,
        changes=("IVR IVR_B added",),
    )
    assert report.describe() == (
        "IVR IVR_B added; 3 ports became available; 1 port became unavailable; "
        "2 live calls ended first"
    )
