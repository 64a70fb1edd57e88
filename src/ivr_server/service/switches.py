"""The virtual switches of the configuration, kept in step with it (start-up and reload).

Theory of operation. Every switch of the configuration is an In-Front virtual switch of this
process (``ivr_server.switch``); its T-Server link is up when a T-Server serves it. A reload
adds the new switches, updates the DNs of those kept, and takes the removed ones away after
telling the sessions their agents' last events.
"""

from __future__ import annotations

from ivr_server.config import ServerConfig
from ivr_server.service.context import ServiceContext
from ivr_server.service.monitoring import AGENT_STATUS_OF_EVENT, Monitoring
from ivr_server.switch import DnType, VirtualSwitch

__all__ = ["apply_switches"]


def apply_switches(
    ctx: ServiceContext, config: ServerConfig, monitoring: Monitoring
) -> tuple[list[str], list[str]]:
    """Keep the virtual switches of ``ctx`` in step with ``config``: (added, removed) names."""
    added: list[str] = []
    removed: list[str] = []
    wanted = {s.name: s for s in config.switches}
    for name in list(ctx.switches):
        if name not in wanted:
            switch = ctx.switches.pop(name)
            switch.disconnect_link()
            for event in switch.drain_events():  # its agents' last word to the sessions
                if type(event) in AGENT_STATUS_OF_EVENT:
                    monitoring.on_agent_event(switch.name, event, None)
            removed.append(name)
    for name, sc in wanted.items():
        dns = [(dn.number, DnType(dn.type.value)) for dn in sc.dns]
        tserver = config.tserver_for_switch(name)
        existing = ctx.switches.get(name)
        if existing is None:
            switch = VirtualSwitch(
                name,
                tserver.name if tserver else "",
                dns,
                first_conn_id=(ctx.id_seed << 24) + 1,
                first_call_id=1,
            )
            ctx.switches[name] = switch
            added.append(name)
        else:
            switch = existing
            switch.update_dns(dns)
        if tserver is not None:
            switch.connect_link()  # In-Front: the virtual switch is this process
        else:
            switch.disconnect_link()
    return added, removed
