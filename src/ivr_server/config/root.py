"""The whole configuration, :class:`ServerConfig`: every section, cross-checked when built.

A configuration is server-wide options (:class:`~.options.ServerOptions`) and the configuration
objects of PROTOCOL.md §5.5 — switches with their DNs, T-Server applications, and IVR objects with
their ports — plus the built-in router's rules and the named statistics. The models mirror the
TOML file one to one: TOML keys are the attribute names in kebab-case, unknown keys are errors,
and every object is frozen once built.

Validation has two stages. Pydantic checks each value (types, ranges, syntax of addresses and
durations); then the functions of :mod:`.checks` check what values say about each other (names
are unique, references resolve, a DN serves one port...). Both stages collect *every* problem;
the second raises :class:`~ivr_server.errors.ConfigError` straight out of ``ServerConfig``'s
constructor, so an inconsistent ``ServerConfig`` cannot exist — built from TOML or in code.
"""

from __future__ import annotations

__all__ = ["ServerConfig"]

from typing import Any, Self

from pydantic import Field, PrivateAttr, model_validator

from ivr_server.errors import ConfigError

from .api import ApiConfig
from .base import ConfigModel
from .checks import reference_problems, routing_problems, statistics_problems
from .ha import HaConfig
from .ivrs import IvrConfig, PortConfig
from .options import ServerOptions
from .routing import AgentGroupConfig, RoutingConfig
from .sites import LocationConfig, location_problems
from .statistics import StatisticConfig
from .switches import DnConfig, SwitchConfig, TServerConfig


class ServerConfig(ConfigModel):
    """A complete, consistent configuration.

    Building one (from TOML or in code) raises :class:`~ivr_server.errors.ConfigError` listing
    every cross-reference problem (see :func:`reference_problems`); pydantic's
    ``ValidationError`` reports problems within single values.
    """

    server: ServerOptions = Field(default_factory=ServerOptions)
    """Server-wide options (TOML table ``[server]``)."""
    switches: tuple[SwitchConfig, ...] = ()
    """Switches and their DNs (TOML ``[[switches]]``)."""
    tservers: tuple[TServerConfig, ...] = ()
    """T-Server applications (TOML ``[[tservers]]``)."""
    ivrs: tuple[IvrConfig, ...] = ()
    """IVR objects and their ports (TOML ``[[ivrs]]``)."""
    routing: tuple[RoutingConfig, ...] = ()
    """The built-in router's rules, one entry per routing point (TOML ``[[routing]]``)."""
    agent_groups: tuple[AgentGroupConfig, ...] = ()
    """Named sets of agents that routing rules target (TOML ``[[agent-groups]]``)."""
    statistics: tuple[StatisticConfig, ...] = ()
    """Named statistics for PeekStatReq/GetStatReq (TOML ``[[statistics]]``)."""
    api: ApiConfig = Field(default_factory=ApiConfig)
    """The HTTP API (TOML ``[api]``)."""
    locations: tuple[LocationConfig, ...] = ()
    """Remote sites of access numbers: DNIS pools and peer servers (TOML ``[[locations]]``)."""
    ha: HaConfig = Field(default_factory=HaConfig)
    """High availability: the shared state store and this node's role (TOML ``[ha]``)."""

    _ivrs: dict[str, IvrConfig] = PrivateAttr(default_factory=dict)
    _switches: dict[str, SwitchConfig] = PrivateAttr(default_factory=dict)
    _tservers: dict[str, TServerConfig] = PrivateAttr(default_factory=dict)
    _tserver_of_switch: dict[str, TServerConfig] = PrivateAttr(default_factory=dict)
    _dns: dict[tuple[str, str], DnConfig] = PrivateAttr(default_factory=dict)
    _routing: dict[str, list[RoutingConfig]] = PrivateAttr(default_factory=dict)
    _agent_groups: dict[str, AgentGroupConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for ivr in self.ivrs:
            self._ivrs.setdefault(ivr.name, ivr)
        for switch in self.switches:
            self._switches.setdefault(switch.name, switch)
            for dn in switch.dns:
                self._dns.setdefault((switch.name, dn.number), dn)
        for tserver in self.tservers:
            self._tservers.setdefault(tserver.name, tserver)
            self._tserver_of_switch.setdefault(tserver.switch, tserver)
        for group in self.agent_groups:
            self._agent_groups.setdefault(group.name, group)
        for entry in self.routing:
            switch_name = self.routing_switch_name(entry)
            if switch_name is not None:
                self._routing.setdefault(switch_name, []).append(entry)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        problems = reference_problems(self.switches, self.tservers, self.ivrs)
        problems += routing_problems(self.switches, self.routing, self.agent_groups)
        problems += statistics_problems(
            self.switches, self.ivrs, self.agent_groups, self.statistics
        )
        problems += location_problems(self.locations, self.statistics)
        if problems:
            raise ConfigError(problems)
        return self

    def ivr(self, name: str) -> IvrConfig | None:
        """The IVR object named ``name`` (case-sensitive), or None."""
        return self.__pydantic_private__["_ivrs"].get(name)  # type: ignore[index,no-any-return]

    def switch(self, name: str) -> SwitchConfig | None:
        """The switch named ``name``, or None."""
        return self.__pydantic_private__["_switches"].get(name)  # type: ignore[index,no-any-return]

    def tserver(self, name: str) -> TServerConfig | None:
        """The T-Server application named ``name``, or None."""
        return self.__pydantic_private__["_tservers"].get(name)  # type: ignore[index,no-any-return]

    def find_dn(self, switch_name: str, number: str) -> tuple[SwitchConfig, DnConfig] | None:
        """The DN numbered ``number`` on switch ``switch_name`` (numbers, not aliases), or None."""
        private = self.__pydantic_private__  # not self._x: pydantic's __getattr__ is slow
        switch = private["_switches"].get(switch_name)  # type: ignore[index]
        dn = private["_dns"].get((switch_name, number))  # type: ignore[index]
        return None if switch is None or dn is None else (switch, dn)

    def tserver_for_switch(self, switch_name: str) -> TServerConfig | None:
        """The T-Server serving switch ``switch_name``, or None."""
        return self.__pydantic_private__["_tserver_of_switch"].get(switch_name)  # type: ignore[index,no-any-return]

    def port_switch_name(self, ivr: IvrConfig, port: PortConfig) -> str | None:
        """The name of the switch of ``port``'s DN: its ``switch``, else that of the IVR's only
        T-Server (None if that cannot be decided)."""
        if port.switch is not None:
            return port.switch
        if len(ivr.tservers) != 1:
            return None
        tserver = self.__pydantic_private__["_tservers"].get(ivr.tservers[0])  # type: ignore[index]
        return None if tserver is None else tserver.switch

    def port_dn(self, ivr: IvrConfig, port: PortConfig) -> tuple[SwitchConfig, DnConfig] | None:
        """The switch and DN a port of ``ivr`` is associated with."""
        switch_name = self.port_switch_name(ivr, port)
        return None if switch_name is None else self.find_dn(switch_name, port.dn)

    def routing_switch_name(self, entry: RoutingConfig) -> str | None:
        """The name of the switch of a ``[[routing]]`` entry's routing point: its ``switch``,
        else the only switch with a DN numbered ``entry.dn`` (None if that cannot be decided)."""
        if entry.switch is not None:
            return entry.switch
        found = [s.name for s in self.switches if (s.name, entry.dn) in self._dns]
        return found[0] if len(found) == 1 else None

    def routing_for(self, switch_name: str) -> tuple[RoutingConfig, ...]:
        """The ``[[routing]]`` entries of the routing points of switch ``switch_name``, in file
        order (empty when the built-in router serves none of its routing points)."""
        return tuple(self._routing.get(switch_name, ()))

    def agent_group(self, name: str) -> AgentGroupConfig | None:
        """The agent group named ``name``, or None."""
        return self._agent_groups.get(name)
