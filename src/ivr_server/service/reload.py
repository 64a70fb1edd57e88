"""What a configuration reload would take away from live calls, found before anything changes.

A reload reads the whole file again, and an empty file is a valid configuration (no IVR, no
switch): applied as it stands, a mistaken truncation would remove every IVR while their calls are
in progress. So before a new configuration replaces the running one, :func:`stranded_calls` lists
every live call whose IVR, port, switch, DN, T-Server or routing point the new configuration
removes or moves elsewhere, and :meth:`IvrService.reload
<ivr_server.service.IvrService.reload>` refuses such a reload (:class:`ReloadRefused`, nothing
changed) unless it is forced; a forced reload ends those calls first, as their Call Timeout
would. Disabling an IVR or a port strands nothing: its calls go on, only new calls are refused.
"""

from __future__ import annotations

__all__ = [
    "PreparedReload",
    "ReloadRefused",
    "ReloadReport",
    "StrandedCall",
    "describe_changes",
    "describe_stranded",
    "prepare_reload",
    "stranded_calls",
]

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel

from ivr_server.calls import Call
from ivr_server.config import ServerConfig
from ivr_server.errors import IvrServerError
from ivr_server.service.ports import PortIndex
from ivr_server.switch import Switch
from ivr_server.vocabulary import ROUTABLE_DN_TYPES

DESCRIBED_REASONS: Final = 10
"""Reasons named in one refusal's text (the rest are counted)."""
DESCRIBED_CALLS: Final = 5
"""Calls named per reason in one refusal's text (the rest are counted)."""


@dataclass(frozen=True, slots=True)
class StrandedCall:
    """A live call that a new configuration would cut off from what it runs on."""

    call_id: str
    """The IVR's CallId."""
    ivr: str
    """The IVR the call belongs to."""
    port: str
    """The IVR port number the call is on."""
    reason: str
    """What the new configuration does, e.g. ``IVR IVR_1 is removed``."""
    key: str = ""
    """The call's key (``Call.key``: its CallId within its IVR's scope)."""


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a configuration reload changed, for the log."""

    ports_unavailable: int
    ports_available: int
    switches_added: tuple[str, ...]
    switches_removed: tuple[str, ...]
    flow_control_changed: bool
    calls_stranded: int = 0
    """Live calls the new configuration took the IVR, port, switch or DN of, ended first (a
    forced reload only: otherwise such a reload is refused)."""
    stranded: tuple[StrandedCall, ...] = field(default=(), repr=False)
    """Those calls, and why."""
    changes: tuple[str, ...] = ()
    """What the new configuration adds, removes and changes, one phrase each
    (:func:`describe_changes`); empty: the same configuration."""

    def describe(self) -> str:
        """The report in words, for the log and ``ivr-server reload``: ``IVR IVR_3 added;
        server.flow-control false -> true; 32 ports became available``, or ``nothing changed``."""
        parts = list(self.changes)
        if self.ports_available:
            parts.append(f"{_count(self.ports_available, 'port')} became available")
        if self.ports_unavailable:
            parts.append(f"{_count(self.ports_unavailable, 'port')} became unavailable")
        if self.calls_stranded:
            parts.append(f"{_count(self.calls_stranded, 'live call')} ended first")
        return "; ".join(parts) if parts else "nothing changed"


def _count(n: int, noun: str) -> str:
    """``1 port``, ``3 ports``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ReloadRefused(IvrServerError):
    """A reload that would strand live calls, not applied (the running configuration stays)."""

    def __init__(self, stranded: tuple[StrandedCall, ...]) -> None:
        self.stranded = stranded
        super().__init__(f"it would strand {describe_stranded(stranded)}")


@dataclass(frozen=True, slots=True)
class PreparedReload:
    """What a reload can work out before it changes anything, from configurations and a
    snapshot alone (the runtime does it in its worker thread: each part is O(ports)).
    :meth:`IvrService.reload <ivr_server.service.IvrService.reload>` uses each part only if it
    still holds when the change is applied."""

    old: ServerConfig
    """The configuration running when it was prepared."""
    changes: tuple[str, ...]
    """:func:`describe_changes` of ``old`` and the new configuration."""
    switches: Mapping[str, Switch]
    """The switches running when it was prepared."""
    ports: PortIndex
    """The new configuration's ports on those switches: right if the reload keeps them all
    (adds, removes and rebuilds none)."""

    def ports_for(self, switches: Mapping[str, Switch]) -> PortIndex | None:
        """:attr:`ports` if ``switches`` are the very switches it was built on, else ``None``."""
        if len(switches) != len(self.switches):
            return None
        if any(self.switches.get(name) is not switch for name, switch in switches.items()):
            return None
        return self.ports


def prepare_reload(
    old: ServerConfig, new: ServerConfig, switches: Mapping[str, Switch]
) -> PreparedReload:
    """:class:`PreparedReload` of going from ``old`` to ``new`` with ``switches`` (a copy the
    caller does not change meanwhile). Reads immutable configurations only: safe in a thread."""
    return PreparedReload(old, describe_changes(old, new), switches, PortIndex.build(new, switches))


def stranded_calls(
    calls: Iterable[Call], config: ServerConfig, rebuilt: frozenset[str] = frozenset()
) -> tuple[StrandedCall, ...]:
    """The calls of ``calls`` that ``config`` would strand, with why (empty: none); the calls
    on a switch of ``rebuilt`` (its type or its PBX link changes) are stranded too."""
    out: list[StrandedCall] = []
    for call in calls:
        reason = _reason(call, config)
        if reason is None and call.switch.name in rebuilt:
            reason = f"switch {call.switch.name} is rebuilt (its type or its PBX link changes)"
        if reason is not None:
            out.append(StrandedCall(call.call_id, call.ivr, call.port, reason, call.key))
    return tuple(out)


def _reason(call: Call, config: ServerConfig) -> str | None:
    ivr = config.ivr(call.ivr)
    if ivr is None:
        return f"IVR {call.ivr} is removed"
    port = ivr.port(call.port)
    if port is None:
        return f"port {call.port} of IVR {call.ivr} is removed"
    switch_name = call.switch.name
    if config.switch(switch_name) is None:
        return f"switch {switch_name} is removed"
    found = config.find_dn(switch_name, call.dn)
    if found is None:
        return f"DN {call.dn} is removed from switch {switch_name}"
    snapshot = call.switch.view.dn(call.dn)
    if snapshot is not None and found[1].type.value != snapshot.type.value:
        return f"DN {call.dn} of switch {switch_name} changes type"
    target = config.port_dn(ivr, port)
    if target is None or target[0].name != switch_name or target[1].number != call.dn:
        where = f"DN {target[1].number} of switch {target[0].name}" if target else "no DN"
        return f"port {call.port} of IVR {call.ivr} moves from DN {call.dn} to {where}"
    if config.tserver_for_switch(switch_name) is None:
        return f"switch {switch_name} loses its T-Server"
    if call.conn_id is not None and call.route_dn is not None:
        waiting = call.switch.view.call(call.conn_id)
        if waiting is not None and waiting.routing_point == call.route_dn:
            rp = config.find_dn(switch_name, call.route_dn)
            if rp is None or rp[1].type not in ROUTABLE_DN_TYPES:
                return f"routing point {call.route_dn} of switch {switch_name} is removed"
    return None


def describe_stranded(stranded: tuple[StrandedCall, ...]) -> str:
    """``3 live calls: IVR IVR_1 is removed (calls C1 on port 1, ...); ...``: how many calls
    and why, naming a bounded number of them (one line for the log and the API)."""
    by_reason: dict[str, list[StrandedCall]] = {}
    for item in stranded:
        by_reason.setdefault(item.reason, []).append(item)
    parts: list[str] = []
    for reason, items in list(by_reason.items())[:DESCRIBED_REASONS]:
        named = ", ".join(f"{c.call_id} on port {c.port}" for c in items[:DESCRIBED_CALLS])
        more = len(items) - DESCRIBED_CALLS
        parts.append(f"{reason} (calls {named}{f' and {more} more' if more > 0 else ''})")
    rest = len(by_reason) - DESCRIBED_REASONS
    if rest > 0:
        parts.append(f"{rest} more reasons")
    calls = "call" if len(stranded) == 1 else "calls"
    return f"{len(stranded)} live {calls}: " + "; ".join(parts)


# ------------------------------------------------------------------ what a reload changed

NAMED: Final = 5
"""Names listed per kind of change in one description (the rest are counted)."""
VALUE_CHARS: Final = 40
"""An option's old and new values are quoted up to this many characters."""
READ_AT_START: Final = frozenset(
    {
        "server.listen",
        "server.listen-backlog",
        "server.tcp-keep-alive",
        "server.log-level",
        "server.log-format",
        "server.log-queue-size",
        "api.listen",
        "api.tls-cert",
        "api.tls-key",
        "api.tls-client-ca",
    }
)
"""Options a reload does not apply (read when the server starts): a change is named as such."""
DURATIONS: Final = frozenset(
    {"server.drain-time", "server.keep-alive-interval", "server.malformed-window"}
)
"""Options in seconds besides ``server.timers.*`` (written with a unit)."""
SECRET: Final = frozenset({"api.token"})
"""Options whose values are never written in a description."""


def describe_changes(old: ServerConfig, new: ServerConfig) -> tuple[str, ...]:
    """What ``new`` adds, removes and changes against ``old``, one phrase each, for the log line
    of a reload and ``ivr-server reload``: ``IVR IVR_3 added``, ``IVR IVR_1 changed (port 33
    added, port 2 removed)``, ``server.flow-control false -> true``. Empty: nothing changed."""
    out: list[str] = []
    out += _named("IVR", old.ivrs, new.ivrs, lambda i: i.name, _ivr_detail)
    out += _named("switch", old.switches, new.switches, lambda s: s.name, _switch_detail)
    out += _named("T-Server", old.tservers, new.tservers, lambda t: t.name)
    out += _named(
        "routing point",
        old.routing,
        new.routing,
        lambda r: r.dn if r.switch is None else f"{r.dn} of switch {r.switch}",
        lambda a, b: _count_detail("rule", a.rules, b.rules),
    )
    out += _named("agent group", old.agent_groups, new.agent_groups, lambda g: g.name)
    out += _named("statistic", old.statistics, new.statistics, lambda s: s.name)
    out += _named("location", old.locations, new.locations, lambda x: x.name)
    out += _options("server", old.server, new.server)
    out += _options("api", old.api, new.api)
    return tuple(out)


def _named(
    kind: str,
    old: Sequence[Any],
    new: Sequence[Any],
    key: Callable[[Any], str],
    detail: Callable[[Any, Any], str] | None = None,
) -> list[str]:
    before = {key(item): item for item in old}
    after = {key(item): item for item in new}
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    changed = [name for name in after if name in before and after[name] != before[name]]
    out: list[str] = []
    if added:
        out.append(f"{_names(kind, added)} added")
    if removed:
        out.append(f"{_names(kind, removed)} removed")
    if detail is None:
        if changed:
            out.append(f"{_names(kind, changed)} changed")
        return out
    for name in changed[:NAMED]:
        what = detail(before[name], after[name])
        out.append(f"{kind} {name} changed{f' ({what})' if what else ''}")
    if len(changed) > NAMED:
        out.append(f"{len(changed) - NAMED} more {_plural(kind)} changed")
    return out


def _plural(kind: str) -> str:
    return "switches" if kind == "switch" else f"{kind}s"


def _names(kind: str, names: list[str]) -> str:
    """``IVR IVR_1``, ``IVRs IVR_1, IVR_2``, ``IVRs A, B, C, D, E and 3 more``."""
    if len(names) == 1:
        return f"{kind} {names[0]}"
    listed = ", ".join(names[:NAMED])
    more = len(names) - NAMED
    return f"{_plural(kind)} {listed}{f' and {more} more' if more > 0 else ''}"


def _ivr_detail(old: Any, new: Any) -> str:
    parts = _named("port", old.ports, new.ports, lambda p: p.number)
    parts += _fields(old, new, skip={"name", "ports"})
    return "; ".join(parts)


def _switch_detail(old: Any, new: Any) -> str:
    parts = _named("DN", old.dns, new.dns, lambda d: d.number)
    parts += _fields(old, new, skip={"name", "dns"})
    return "; ".join(parts)


def _count_detail(kind: str, old: Sequence[Any], new: Sequence[Any]) -> str:
    if len(old) == len(new):
        return f"{kind}s edited"
    return f"{len(old)} {kind}s -> {len(new)}"


def _fields(old: BaseModel, new: BaseModel, skip: set[str]) -> list[str]:
    """The fields that differ: ``legacy-mode true -> false``, ``tservers changed``."""
    out: list[str] = []
    for name in type(old).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if name in skip or before == after:
            continue
        key = name.replace("_", "-")
        if _scalar(before) and _scalar(after):
            out.append(f"{key} {_value(before)} -> {_value(after)}")
        else:
            out.append(f"{key} changed")
    return out


def _options(section: str, old: BaseModel, new: BaseModel) -> list[str]:
    """``server.flow-control false -> true``, ``api.token changed``, ``server.listen changed
    (read at start: applies when the server is next started)``."""
    out: list[str] = []
    for name in type(old).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        key = f"{section}.{name.replace('_', '-')}"
        nested = isinstance(before, BaseModel) and isinstance(after, BaseModel)
        if nested and key not in READ_AT_START:
            out += _options(key, before, after)
            continue
        if key in SECRET or not (_scalar(before) and _scalar(after)):
            text = f"{key} changed"
        elif key in DURATIONS or key.startswith("server.timers."):
            text = f"{key} {_duration(before)} -> {_duration(after)}"
        else:
            text = f"{key} {_value(before)} -> {_value(after)}"
        if key in READ_AT_START:
            text += " (read at start: applies when the server is next started)"
        out.append(text)
    return out


def _duration(value: object) -> str:
    """``8h``, ``90s``, ``500ms`` (seconds in; ``-1`` as is)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return _value(value)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if value >= size and (value / size).is_integer():
            return f"{int(value / size)}{unit}"
    if value >= 1:
        return f"{value:g}s"
    return f"{value * 1000:g}ms"


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _value(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value) if isinstance(value, int | float) else repr(value)
    return text if len(text) <= VALUE_CHARS else f"{text[: VALUE_CHARS - 3]}..."
