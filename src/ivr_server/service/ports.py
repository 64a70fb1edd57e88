"""The IVR ports of the configuration: where each one's calls go, and which DN is which port.

Theory of operation. The mode procedure of PROTOCOL.md §5.2 (which switch and DN a new call of
an IVR port lands on, and in which mode) is worked out for every port when the configuration is
loaded (:meth:`PortIndex.build`): a ``NewCall`` then costs one dict lookup. A port that cannot
take calls is not in the table; :func:`resolve_port` says why (:class:`NoPort`). The index also
maps a switch's DN back to its port (agent events become ``MonitorInfo Agent``), lists the
routing points, and maps each routing point of an In-Front switch to its switch: a ``NewCall``
whose ``CalledNum`` names one is a Network call (step 1 of the procedure, docs/network.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from ivr_server.calls import PortTarget
from ivr_server.config import ServerConfig
from ivr_server.switch import DnType, Switch

__all__ = ["NoPort", "PortIndex", "PortKey", "resolve_port"]

PortKey = tuple[str, str]
"""(IVR name, port number)."""


class NoPort(Exception):
    """Why a port cannot take a call (the mode procedure failed); its text is the reason."""


class PortIndex:
    """The ports of one configuration (built with it: keyed by its own strings, nothing grows
    with calls)."""

    def __init__(
        self,
        targets: dict[str, dict[str, PortTarget]] | None = None,
        port_of_dn: dict[tuple[str, str], PortKey] | None = None,
        routing_points: frozenset[str] = frozenset(),
        network_points: dict[str, Switch] | None = None,
        subset: int = 0,
    ) -> None:
        self.targets: dict[str, dict[str, PortTarget]] = targets or {}
        """IVR name -> port number -> where its calls land (mode procedure), for every port
        that can take calls."""
        self.port_of_dn: dict[tuple[str, str], PortKey] = port_of_dn or {}
        """(switch name, DN) -> (IVR name, port number)."""
        self.routing_points = routing_points
        """The routing points of every switch."""
        self.network_points: dict[str, Switch] = network_points or {}
        """Routing point number -> the In-Front switch that has it (the first, if several do):
        where a Network call may wait (MODES-AND-HA §1.3, G19)."""
        self.subset = subset
        """``[server] called-num-subset``: the rightmost digits of a ``CalledNum`` that name a
        routing DN (0: all of it)."""

    @staticmethod
    def build(config: ServerConfig, switches: Mapping[str, Switch]) -> PortIndex:
        routing_points = frozenset(
            dn.number
            for switch in config.switches
            for dn in switch.dns
            if dn.type.value == DnType.ROUTING_POINT.value
        )
        targets: dict[str, dict[str, PortTarget]] = {}
        for ivr in config.ivrs:
            ports = targets[ivr.name] = {}
            for port in ivr.ports:
                with contextlib.suppress(NoPort):
                    ports[port.number] = resolve_port(
                        config, switches, routing_points, ivr.name, port.number
                    )
        index: dict[tuple[str, str], PortKey] = {}
        for ivr in config.ivrs:
            for port in ivr.ports:
                switch = config.port_switch_name(ivr, port)
                if switch is not None:
                    index[(switch, port.dn)] = (ivr.name, port.number)
        network_points: dict[str, Switch] = {}
        for switch_cfg in config.switches:
            vswitch = switches.get(switch_cfg.name)
            if switch_cfg.type != "in-front" or vswitch is None:
                continue
            for dn in switch_cfg.dns:
                if dn.type.value == DnType.ROUTING_POINT.value:
                    network_points.setdefault(dn.number, vswitch)
        return PortIndex(
            targets, index, routing_points, network_points, config.server.called_num_subset
        )

    def network_point(self, called_num: str) -> tuple[str, Switch] | None:
        """The routing DN ``called_num`` names (its rightmost ``called-num-subset`` digits) and
        its In-Front switch, if it names one: a Network call (PROTOCOL.md §5.2 step 1)."""
        subset = self.subset
        dn = called_num[-subset:] if subset else called_num
        switch = self.network_points.get(dn)
        return (dn, switch) if switch is not None else None


def resolve_port(
    config: ServerConfig,
    switches: Mapping[str, Switch],
    routing_points: frozenset[str],
    client_name: str,
    key: str,
) -> PortTarget:
    """The mode procedure for port ``key`` of IVR ``client_name``; :class:`NoPort` says why the
    port cannot take a call."""
    if key in routing_points:
        raise NoPort(f"{key} is a routing point of no In-Front switch (Network mode needs one)")
    ivr = config.ivr(client_name)
    port = ivr.port(key) if ivr is not None else None
    if ivr is None or port is None:
        raise NoPort(f"{client_name} has no port {key!r}")
    if not (ivr.enabled and port.enabled):
        raise NoPort(f"port {key} of {ivr.name} is disabled")
    target = config.port_dn(ivr, port)
    if target is None:
        raise NoPort(f"port {key} of {ivr.name} has no DN")
    switch_cfg, dn = target
    tserver = config.tserver_for_switch(switch_cfg.name)
    vswitch = switches.get(switch_cfg.name)
    if tserver is None or tserver.name not in ivr.tservers or vswitch is None:
        raise NoPort(f"the T-Server of switch {switch_cfg.name} is not a connection of {ivr.name}")
    return PortTarget(
        ivr=ivr.name,
        port=port.number,
        dn=dn.number,
        switch=vswitch,
        mode="In-Front" if switch_cfg.type == "in-front" else "Behind",
        encoding=ivr.output_encoding or config.server.output_encoding,
    )
