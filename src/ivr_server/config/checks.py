"""The checks that tie the configuration's parts together: names unique, references resolved.

Pydantic checks each value on its own; these functions check what the values say about each
other (a port's DN exists on its switch and serves no other port, a rule's queue is an
``acd-queue``, a statistic's object exists...). Each returns *every* problem it finds, located in
the style of the loader (``ivrs[0].ports[3].dn``). They take sequences whose items may be
``None`` (an item that failed validation on its own), so the loader can report these problems
together with pydantic's in one pass; :class:`~.root.ServerConfig` runs them when built.
"""

from __future__ import annotations

__all__ = ["reference_problems", "routing_problems", "statistics_problems"]

from collections.abc import Mapping, Sequence
from typing import Final

from ivr_server.errors import ConfigProblem
from ivr_server.vocabulary import ROUTABLE_DN_TYPES, DnType

from .ivrs import PORT_DN_TYPES, IvrConfig
from .premise import premise_problems
from .routing import AgentGroupConfig, RoutingConfig
from .statistics import StatisticConfig, split_object_id
from .switches import DnConfig, SwitchConfig, TServerConfig


def _a(dn_type: DnType) -> str:
    """``an extension``, ``a routing-point``."""
    return f"{'an' if dn_type.value[0] in 'aeiou' else 'a'} {dn_type.value}"


def _names(names: Sequence[str] | set[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def _dns_by_switch(switches: Sequence[SwitchConfig | None]) -> dict[str, dict[str, DnConfig]]:
    """Switch name → DN number → DN, of the valid switches (the first of a duplicated name, the
    first of a duplicated number)."""
    dns_of: dict[str, dict[str, DnConfig]] = {}
    for switch in switches:
        if switch is not None and switch.name not in dns_of:
            dns_of[switch.name] = {dn.number: dn for dn in reversed(switch.dns)}
    return dns_of


def reference_problems(
    switches: Sequence[SwitchConfig | None],
    tservers: Sequence[TServerConfig | None],
    ivrs: Sequence[IvrConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_tservers: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how switches, DNs, T-Servers, IVRs and ports refer to each other, the
    premise switches' links included (:func:`~.premise.premise_problems`).

    An item may be ``None``: it failed validation on its own, keeps its index for locations, and
    is skipped. A reference to a name in ``unverified_*`` (the names of such items) is not
    reported as unknown. This lets the loader report cross-reference problems together with
    pydantic's, in one pass.
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    # Switches and their DNs.
    switch_at: dict[str, int] = {}
    dns_of: dict[str, dict[str, DnConfig]] = {}
    for i, switch in enumerate(switches):
        if switch is None:
            continue
        if switch.name in switch_at:
            add(
                f"switches[{i}].name",
                f"duplicate switch name {switch.name!r}"
                f" (first at switches[{switch_at[switch.name]}])",
            )
            continue
        switch_at[switch.name] = i
        numbers: dict[str, int] = {}
        for k, dn in enumerate(switch.dns):
            if dn.number in numbers:
                add(
                    f"switches[{i}].dns[{k}].number",
                    f"duplicate DN {dn.number!r} on switch"
                    f" {switch.name!r} (first at switches[{i}].dns[{numbers[dn.number]}])",
                )
            else:
                numbers[dn.number] = k
        aliases: dict[str, int] = {}
        for k, dn in enumerate(switch.dns):
            if dn.alias is None:
                continue
            if numbers.get(dn.alias, k) != k:
                add(
                    f"switches[{i}].dns[{k}].alias",
                    f"alias {dn.alias!r} is the number of"
                    f" another DN (switches[{i}].dns[{numbers[dn.alias]}])",
                )
            elif dn.alias in aliases:
                add(
                    f"switches[{i}].dns[{k}].alias",
                    f"duplicate alias {dn.alias!r} on switch"
                    f" {switch.name!r} (first at switches[{i}].dns[{aliases[dn.alias]}])",
                )
            else:
                aliases[dn.alias] = k
        dns_of[switch.name] = {dn.number: dn for dn in reversed(switch.dns)}

    # T-Servers.
    tserver_at: dict[str, int] = {}
    tserver_switch: dict[str, str] = {}  # T-Server name -> switch name, known switches only
    served_by: dict[str, int] = {}  # switch name -> index of its T-Server
    for i, tserver in enumerate(tservers):
        if tserver is None:
            continue
        if tserver.name in tserver_at:
            add(
                f"tservers[{i}].name",
                f"duplicate T-Server name {tserver.name!r}"
                f" (first at tservers[{tserver_at[tserver.name]}])",
            )
            continue
        tserver_at[tserver.name] = i
        if tserver.switch not in switch_at:
            if tserver.switch not in unverified_switches:
                add(
                    f"tservers[{i}].switch",
                    f"unknown switch {tserver.switch!r}"
                    f" (switches: {_names(switch_at.keys() | unverified_switches)})",
                )
            continue
        tserver_switch[tserver.name] = tserver.switch
        if tserver.switch in served_by:
            j = served_by[tserver.switch]
            add(
                f"tservers[{i}].switch",
                f"switch {tserver.switch!r} is already served by"
                f" T-Server at tservers[{j}]; a switch has exactly one T-Server",
            )
        else:
            served_by[tserver.switch] = i

    # IVRs and their ports.
    ivr_at: dict[str, int] = {}
    port_of_dn: dict[tuple[str, str], str] = {}  # (switch, DN) -> location of the port using it
    port_of_agent: dict[tuple[str, str], str] = {}  # (switch, agent id) -> location
    for i, ivr in enumerate(ivrs):
        if ivr is None:
            continue
        if ivr.name in ivr_at:
            add(
                f"ivrs[{i}].name",
                f"duplicate IVR name {ivr.name!r} (first at ivrs[{ivr_at[ivr.name]}])",
            )
        else:
            ivr_at[ivr.name] = i

        # The switches this IVR reaches; `complete` is False when some T-Server is unusable.
        ivr_switches: dict[str, str] = {}
        complete = True
        listed: set[str] = set()
        for k, name in enumerate(ivr.tservers):
            if name in listed:
                add(f"ivrs[{i}].tservers[{k}]", f"T-Server {name!r} is listed twice")
                continue
            listed.add(name)
            if name in tserver_switch:
                ivr_switches[tserver_switch[name]] = name
                continue
            complete = False
            if name not in tserver_at and name not in unverified_tservers:
                add(
                    f"ivrs[{i}].tservers[{k}]",
                    f"unknown T-Server {name!r}"
                    f" (T-Servers: {_names(tserver_at.keys() | unverified_tservers)})",
                )
        if ivr.ports and not ivr.tservers:
            add(
                f"ivrs[{i}].tservers",
                f"IVR {ivr.name!r} has ports but no T-Server;"
                " name the T-Server of the ports' switch",
            )

        port_numbers: dict[str, int] = {}
        for k, port in enumerate(ivr.ports):
            where = f"ivrs[{i}].ports[{k}]"
            if port.number in port_numbers:
                first = port_numbers[port.number]
                add(
                    f"{where}.number",
                    f"duplicate port number {port.number!r} in IVR"
                    f" {ivr.name!r} (first at ivrs[{i}].ports[{first}])",
                )
            else:
                port_numbers[port.number] = k

            # Which switch the port's DN is on.
            if port.switch is None:
                if len(listed) > 1:
                    add(
                        f"{where}.switch",
                        f"required: IVR {ivr.name!r} has several T-Servers"
                        f" ({_names(listed)}), so say which switch the port's DN is on",
                    )
                    continue
                if len(listed) == 0 or not complete:
                    continue  # reported at ivrs[i].tservers
                switch_name = next(iter(ivr_switches))
            else:
                switch_name = port.switch
                if switch_name not in switch_at:
                    if switch_name not in unverified_switches:
                        add(
                            f"{where}.switch",
                            f"unknown switch {switch_name!r}"
                            f" (switches: {_names(switch_at.keys() | unverified_switches)})",
                        )
                    continue
                if switch_name not in ivr_switches and complete:
                    add(
                        f"{where}.switch",
                        f"switch {switch_name!r} is not served by any of"
                        f" IVR {ivr.name!r}'s T-Servers ({_names(listed)})",
                    )

            # The DN itself.
            target = dns_of[switch_name].get(port.dn)
            if target is None:
                add(f"{where}.dn", f"DN {port.dn!r} is not a DN of switch {switch_name!r}")
            elif target.type not in PORT_DN_TYPES:
                add(
                    f"{where}.dn",
                    f"DN {port.dn!r} on switch {switch_name!r} is {_a(target.type)};"
                    " a port's DN must be an extension or a voice-treatment-port",
                )
            key = (switch_name, port.dn)
            if key in port_of_dn:
                add(
                    f"{where}.dn",
                    f"DN {port.dn!r} on switch {switch_name!r} is already the DN"
                    f" of the port at {port_of_dn[key]}",
                )
            else:
                port_of_dn[key] = where

            # Its auto-login agent.
            login = port.auto_login
            if login is None:
                continue
            if login.queue:
                queue = dns_of[switch_name].get(login.queue)
                if queue is None or queue.type is not DnType.ACD_QUEUE:
                    what = "not a DN" if queue is None else f"{_a(queue.type)}, not an acd-queue"
                    add(
                        f"{where}.auto-login.queue",
                        f"queue {login.queue!r} is {what} on switch {switch_name!r}",
                    )
            agent = (switch_name, login.agent_id)
            if agent in port_of_agent:
                add(
                    f"{where}.auto-login.agent-id",
                    f"agent {login.agent_id!r} is already"
                    f" auto-logged-in on switch {switch_name!r} by the port at"
                    f" {port_of_agent[agent]}",
                )
            else:
                port_of_agent[agent] = where

    return problems + premise_problems(switches, tservers, ivrs)


def routing_problems(
    switches: Sequence[SwitchConfig | None],
    routing: Sequence[RoutingConfig | None],
    agent_groups: Sequence[AgentGroupConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_groups: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how ``[[routing]]`` and ``[[agent-groups]]`` refer to the switches' DNs
    and to each other.

    ``None`` items and ``unverified_*`` names work as in :func:`reference_problems`. When a switch
    failed validation, a routing point that names no switch and is found on none of the others
    is not reported (it may be on the failed one).
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    switches_complete = all(switch is not None for switch in switches)
    dns_of = _dns_by_switch(switches)

    # Agent groups.
    group_at: dict[str, int] = {}
    for i, group in enumerate(agent_groups):
        if group is None:
            continue
        if group.name in group_at:
            add(
                f"agent-groups[{i}].name",
                f"duplicate agent group name {group.name!r}"
                f" (first at agent-groups[{group_at[group.name]}])",
            )
        else:
            group_at[group.name] = i
        seen: dict[str, int] = {}
        for k, agent in enumerate(group.agents):
            if agent in seen:
                add(
                    f"agent-groups[{i}].agents[{k}]",
                    f"agent {agent!r} is listed twice (first at agent-groups[{i}].agents"
                    f"[{seen[agent]}])",
                )
            else:
                seen[agent] = k

    # Routing points.
    routing_at: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(routing):
        if entry is None:
            continue
        where = f"routing[{i}]"
        rule_at: dict[str, int] = {}
        for k, rule in enumerate(entry.rules):
            if rule.name in rule_at:
                add(
                    f"{where}.rules[{k}].name",
                    f"duplicate rule name {rule.name!r} (first at {where}.rules"
                    f"[{rule_at[rule.name]}])",
                )
            else:
                rule_at[rule.name] = k
            group_name = rule.agent_group
            if (
                group_name is not None
                and group_name not in group_at
                and group_name not in unverified_groups
            ):
                add(
                    f"{where}.rules[{k}].agent-group",
                    f"unknown agent group {group_name!r}"
                    f" (agent groups: {_names(group_at.keys() | unverified_groups)})",
                )

        # The routing point's switch and DN.
        if entry.switch is not None:
            switch_name = entry.switch
            if switch_name not in dns_of:
                if switch_name not in unverified_switches:
                    add(
                        f"{where}.switch",
                        f"unknown switch {switch_name!r}"
                        f" (switches: {_names(dns_of.keys() | unverified_switches)})",
                    )
                continue
        else:
            found = [name for name, dns in dns_of.items() if entry.dn in dns]
            if len(found) > 1:
                add(
                    f"{where}.switch",
                    f"required: DN {entry.dn!r} exists on several switches ({_names(found)}),"
                    " so say which one the routing point is on",
                )
                continue
            if not found:
                if switches_complete:
                    add(
                        f"{where}.dn",
                        f"DN {entry.dn!r} is not a DN of any switch"
                        f" (switches: {_names(set(dns_of))})",
                    )
                continue
            switch_name = found[0]
        dns = dns_of[switch_name]
        point = dns.get(entry.dn)
        if point is None:
            add(f"{where}.dn", f"DN {entry.dn!r} is not a DN of switch {switch_name!r}")
        elif point.type not in ROUTABLE_DN_TYPES:
            add(
                f"{where}.dn",
                f"DN {entry.dn!r} on switch {switch_name!r} is {_a(point.type)};"
                " the built-in router serves routing-point and virtual-routing-point DNs",
            )
        key = (switch_name, entry.dn)
        if key in routing_at:
            add(
                f"{where}.dn",
                f"routing point {entry.dn!r} on switch {switch_name!r} already has rules"
                f" at routing[{routing_at[key]}]",
            )
        else:
            routing_at[key] = i

        # Targets that must be DNs of the same switch.
        for k, rule in enumerate(entry.rules):
            for key_name, number, wanted in (
                ("queue", rule.queue, DnType.ACD_QUEUE),
                ("routing-point", rule.routing_point, DnType.ROUTING_POINT),
            ):
                if number is None:
                    continue
                target = dns.get(number)
                if target is None:
                    add(
                        f"{where}.rules[{k}].{key_name}",
                        f"{key_name} {number!r} is not a DN of switch {switch_name!r}",
                    )
                elif target.type is not wanted:
                    add(
                        f"{where}.rules[{k}].{key_name}",
                        f"{key_name} {number!r} on switch {switch_name!r} is"
                        f" {_a(target.type)}, not {_a(wanted)}",
                    )
    return problems


_STAT_DN_TYPES: Final[Mapping[str, DnType]] = {
    "RoutePoint": DnType.ROUTING_POINT,
    "Queue": DnType.ACD_QUEUE,
}
"""Statistic object types whose object id is a DN, and the DN type it must have."""


def statistics_problems(
    switches: Sequence[SwitchConfig | None],
    ivrs: Sequence[IvrConfig | None],
    agent_groups: Sequence[AgentGroupConfig | None],
    statistics: Sequence[StatisticConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_ivrs: frozenset[str] = frozenset(),
    unverified_groups: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how ``[[statistics]]`` entries name each other and their objects.

    ``None`` items and ``unverified_*`` names work as in :func:`reference_problems`. A DN object
    id that names no switch and is found on none is not reported when a switch failed validation
    (it may be on the failed one).
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    switches_complete = all(switch is not None for switch in switches)
    dns_of = _dns_by_switch(switches)
    ivr_names = {ivr.name for ivr in ivrs if ivr is not None}
    group_names = {group.name for group in agent_groups if group is not None}

    name_at: dict[str, int] = {}
    for i, stat in enumerate(statistics):
        if stat is None:
            continue
        where = f"statistics[{i}]"
        if stat.name in name_at:
            add(
                f"{where}.name",
                f"duplicate statistic name {stat.name!r} (first at statistics[{name_at[stat.name]}])",
            )
        else:
            name_at[stat.name] = i

        object_id, object_type = stat.object_id, stat.object_type
        wanted = _STAT_DN_TYPES.get(object_type)
        if wanted is not None:
            number, switch_name = split_object_id(object_id)
            if switch_name is None:
                found = [name for name, dns in dns_of.items() if number in dns]
                if len(found) > 1:
                    add(
                        f"{where}.object-id",
                        f"DN {number!r} exists on several switches ({_names(found)}),"
                        f" so name its switch: '{number}@<switch>'",
                    )
                    continue
                if not found:
                    if switches_complete:
                        add(
                            f"{where}.object-id",
                            f"DN {number!r} is not a DN of any switch"
                            f" (switches: {_names(set(dns_of))})",
                        )
                    continue
                switch_name = found[0]
            elif switch_name not in dns_of:
                if switch_name not in unverified_switches:
                    add(
                        f"{where}.object-id",
                        f"unknown switch {switch_name!r} in {object_id!r}"
                        f" (switches: {_names(dns_of.keys() | unverified_switches)})",
                    )
                continue
            dn = dns_of[switch_name].get(number)
            if dn is None:
                add(f"{where}.object-id", f"DN {number!r} is not a DN of switch {switch_name!r}")
            elif dn.type is not wanted:
                add(
                    f"{where}.object-id",
                    f"DN {number!r} on switch {switch_name!r} is {_a(dn.type)};"
                    f" a {object_type} statistic needs {_a(wanted)}",
                )
        elif object_type == "AgentGroup":
            if object_id not in group_names and object_id not in unverified_groups:
                add(
                    f"{where}.object-id",
                    f"unknown agent group {object_id!r}"
                    f" (agent groups: {_names(group_names | unverified_groups)})",
                )
        elif object_type == "Location":
            continue  # a Location's pool: checked with the locations (sites.location_problems)
        elif object_id not in ivr_names and object_id not in unverified_ivrs:
            add(
                f"{where}.object-id",
                f"unknown IVR {object_id!r} (IVRs: {_names(ivr_names | unverified_ivrs)})",
            )
    return problems
