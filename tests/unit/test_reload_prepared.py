"""A reload prepared off the loop (issue 26 item 4): each part is used only while it holds."""

from __future__ import annotations

from ivr_server.config import ServerConfig, parse_config
from ivr_server.service import IvrService
from ivr_server.service.reload import describe_changes, prepare_reload


def config(ports: int, switch: str = "SW") -> ServerConfig:
    dns = ", ".join(
        f'{{ number = "{4001 + i}", type = "voice-treatment-port" }}' for i in range(ports)
    )
    port_list = ", ".join(f'{{ number = "{i + 1}", dn = "{4001 + i}" }}' for i in range(ports))
    return parse_config(
        f'[[switches]]\nname = "{switch}"\ndns = [{dns}]\n'
        f'[[tservers]]\nname = "TS"\nswitch = "{switch}"\n'
        f'[[ivrs]]\nname = "IVR_1"\ntservers = ["TS"]\nports = [{port_list}]\n'
    )


def test_a_prepared_reload_is_used_while_it_holds() -> None:
    running, new = config(2), config(3)
    service = IvrService(running)
    prepared = prepare_reload(running, new, dict(service.switches))
    assert prepared.changes == describe_changes(running, new)
    assert prepared.ports_for(service.switches) is prepared.ports
    report = service.reload(new, prepared=prepared)
    assert report.changes == prepared.changes
    assert service._ctx.ports is prepared.ports
    assert set(service._ctx.ports.targets["IVR_1"]) == {"1", "2", "3"}


def test_a_stale_prepared_reload_is_worked_out_again() -> None:
    running, other, new = config(2), config(1), config(3, switch="SW2")
    service = IvrService(running)
    stale = prepare_reload(other, new, dict(service.switches))  # against another configuration
    report = service.reload(new, prepared=stale)
    assert report.changes == describe_changes(running, new)
    # the switch SW2 is new: the index built on the old switches cannot serve
    assert stale.ports_for(service.switches) is None
    assert service._ctx.ports is not stale.ports
    target = service._ctx.ports.targets["IVR_1"]["3"]
    assert target.switch is service.switches["SW2"]


def test_ports_built_on_switches_the_reload_replaces_are_built_again() -> None:
    running, new = config(2), config(3, switch="SW2")
    service = IvrService(running)
    prepared = prepare_reload(running, new, dict(service.switches))
    report = service.reload(new, prepared=prepared)
    assert report.changes == prepared.changes  # still right: the same two configurations
    assert service._ctx.ports is not prepared.ports  # SW went, SW2 came
    assert service._ctx.ports.targets["IVR_1"]["3"].switch is service.switches["SW2"]
