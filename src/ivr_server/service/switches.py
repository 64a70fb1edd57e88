"""The switches of the configuration, kept in step with it (start-up and reload).

Theory of operation. Every switch of the configuration is built by the switch registry
(``ivr_server.switch.build_switch``) from its kind: an ``in-front`` switch is a virtual switch of
this process, its T-Server link up when a T-Server serves it; a ``premise-csta`` switch is a
premise PBX watched over its CSTA link (Behind mode), built with the link settings of its
T-Server's ``[tservers.premise]`` table, and its TOpenLink only says the link is wanted: the
runtime's adapter connects, and the link comes up when the PBX's session is usable. A reload adds
the new switches, sends those kept their new DN set (``TConfigureAddresses``), and takes the
removed ones away (TCloseLink: a premise switch ends its session and the adapter closes the
socket) after telling the sessions their agents' last events. A switch whose type or PBX link
settings changed is one removed and one added. The link and the DN set are requests like any
other, with ReferenceIDs of the service's range.
"""

from __future__ import annotations

from typing import Final

from ivr_server.config import PremiseConfig, ServerConfig
from ivr_server.service.context import ServiceContext
from ivr_server.service.monitoring import AGENT_STATUS_OF_EVENT, Monitoring
from ivr_server.switch import DnType, TCloseLink, TConfigureAddresses, TOpenLink, build_switch
from ivr_server.switch.premise.settings import PremiseSettings

__all__ = ["SWITCH_KIND", "apply_switches", "premise_settings", "rebuilt_switches"]

SWITCH_KIND: Final = {"in-front": "virtual", "premise-csta": "premise-csta"}
"""A configured switch type → the kind of switch the registry builds for it."""


def premise_settings(premise: PremiseConfig) -> PremiseSettings:
    """The plain link settings of a premise switch from its T-Server's ``[tservers.premise]``."""
    return PremiseSettings(
        host=premise.address.host,
        port=premise.address.port,
        application_id=premise.application_id,
        user=premise.user,
        password=premise.password.get_secret_value() if premise.password is not None else None,
        dialect=premise.dialect,
        tls=premise.tls,
        session_duration_s=max(1, round(premise.session_duration)),
        heartbeat_s=premise.heartbeat,
        invoke_timeout_s=premise.invoke_timeout,
        reconnect_initial=premise.reconnect_initial,
        reconnect_max=premise.reconnect_max,
        emulate_single_step=premise.emulate_single_step,
        mirror_keys=premise.mirror_keys,
    )


def _settings_of(config: ServerConfig, name: str) -> PremiseSettings | None:
    """The link settings of switch ``name`` when it is a premise switch, else ``None``."""
    tserver = config.tserver_for_switch(name)
    if tserver is None or tserver.premise is None:
        return None
    return premise_settings(tserver.premise)


def rebuilt_switches(previous: ServerConfig, config: ServerConfig) -> frozenset[str]:
    """The switches of both ``previous`` and ``config`` that must be built anew to apply
    ``config``: their type changed, or the link to their PBX did (a premise switch's settings
    are fixed when it is built). Their calls cannot stay (``service/reload.py``)."""
    out: set[str] = set()
    for switch in config.switches:
        before = previous.switch(switch.name)
        if before is None:
            continue
        if before.type != switch.type or _settings_of(previous, switch.name) != _settings_of(
            config, switch.name
        ):
            out.add(switch.name)
    return frozenset(out)


def apply_switches(
    ctx: ServiceContext,
    config: ServerConfig,
    monitoring: Monitoring,
    rebuilt: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """Keep the switches of ``ctx`` in step with ``config``: (added, removed) names; those of
    ``rebuilt`` (:func:`rebuilt_switches`) are in both."""
    added: list[str] = []
    removed: list[str] = []
    wanted = {s.name: s for s in config.switches}
    for name in list(ctx.switches):
        if name not in wanted or name in rebuilt:
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
                premise=_settings_of(config, name),
                first_conn_id=(ctx.id_seed << 24) + 1,
                first_call_id=1,
            )
            ctx.switches[name] = switch
            added.append(name)
        else:
            switch = existing
            switch.request(TConfigureAddresses(reference_id=ctx.refs(), dns=dns))
        # In-Front: the virtual switch is this process; Behind: the adapter connects to the PBX
        if tserver is not None:
            switch.request(TOpenLink(reference_id=ctx.refs()))
        else:
            switch.request(TCloseLink(reference_id=ctx.refs()))
    return added, removed
