"""The switches of the configuration, kept in step with it (start-up and reload).

Theory of operation. Every switch of the configuration is built by the switch registry
(``ivr_server.switch.build_switch``) from its kind: an ``in-front`` switch is a virtual switch of
this process, its T-Server link up when a T-Server serves it. A reload adds the new switches,
sends those kept their new DN set (``TConfigureAddresses``), and takes the removed ones away after
telling the sessions their agents' last events. The link and the DN set are requests like any
other, with ReferenceIDs of the service's range.

A configured switch type this build cannot run yet (``premise-csta``: Behind mode) is refused
before anything changes, at start and at a reload alike (:func:`check_switch_types`).
"""

from __future__ import annotations

from typing import Final

from ivr_server.config import ServerConfig
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.service.context import ServiceContext
from ivr_server.service.monitoring import AGENT_STATUS_OF_EVENT, Monitoring
from ivr_server.switch import DnType, TCloseLink, TConfigureAddresses, TOpenLink, build_switch

__all__ = ["SWITCH_KIND", "apply_switches", "check_switch_types", "unavailable_switches"]

SWITCH_KIND: Final = {"in-front": "virtual"}
"""A configured switch type → the kind of switch the registry builds for it (a type missing
here is configured and checked, but cannot run in this build: :func:`unavailable_switches`)."""


def unavailable_switches(config: ServerConfig) -> list[ConfigProblem]:
    """One problem per switch of ``config`` whose type this build cannot run yet."""
    return [
        ConfigProblem(
            f"switches[{i}]",
            f"switch {switch.name!r}: Behind mode ({switch.type}) is not available in this"
            " build yet",
        )
        for i, switch in enumerate(config.switches)
        if switch.type not in SWITCH_KIND
    ]


def check_switch_types(config: ServerConfig) -> None:
    """Raise :class:`ConfigError` if ``config`` has a switch this build cannot run yet; called
    before a configuration is applied, so nothing has changed then."""
    problems = unavailable_switches(config)
    if problems:
        raise ConfigError(problems)


def apply_switches(
    ctx: ServiceContext, config: ServerConfig, monitoring: Monitoring
) -> tuple[list[str], list[str]]:
    """Keep the switches of ``ctx`` in step with ``config``: (added, removed) names. A switch
    this build cannot run raises :class:`ConfigError` before anything changes."""
    check_switch_types(config)
    added: list[str] = []
    removed: list[str] = []
    wanted = {s.name: s for s in config.switches}
    for name in list(ctx.switches):
        if name not in wanted:
            switch = ctx.switches.pop(name)
            switch.request(TCloseLink(reference_id=ctx.refs()))
            for event in switch.drain_events():  # its agents' last word to the sessions
                if type(event) in AGENT_STATUS_OF_EVENT:
                    monitoring.on_agent_event(switch.name, event, None)
            removed.append(name)
    for name, sc in wanted.items():
        dns = tuple((dn.number, DnType(dn.type.value)) for dn in sc.dns)
        tserver = config.tserver_for_switch(name)
        existing = ctx.switches.get(name)
        if existing is None:
            switch = build_switch(
                SWITCH_KIND[sc.type],
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
            switch.request(TConfigureAddresses(reference_id=ctx.refs(), dns=dns))
        if tserver is not None:  # In-Front: the virtual switch is this process
            switch.request(TOpenLink(reference_id=ctx.refs()))
        else:
            switch.request(TCloseLink(reference_id=ctx.refs()))
    return added, removed
