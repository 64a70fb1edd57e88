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

__all__ = ["ReloadRefused", "StrandedCall", "describe_stranded", "stranded_calls"]

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ivr_server.calls import Call
from ivr_server.config import ServerConfig
from ivr_server.config.model import DnType
from ivr_server.errors import IvrServerError

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


class ReloadRefused(IvrServerError):
    """A reload that would strand live calls, not applied (the running configuration stays)."""

    def __init__(self, stranded: tuple[StrandedCall, ...]) -> None:
        self.stranded = stranded
        super().__init__(f"it would strand {describe_stranded(stranded)}")


def stranded_calls(calls: Iterable[Call], config: ServerConfig) -> tuple[StrandedCall, ...]:
    """The calls of ``calls`` that ``config`` would strand, with why (empty: none)."""
    out: list[StrandedCall] = []
    for call in calls:
        reason = _reason(call, config)
        if reason is not None:
            out.append(StrandedCall(call.call_id, call.ivr, call.port, reason))
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
    snapshot = call.switch.dn(call.dn)
    if snapshot is not None and found[1].type.value != snapshot.type.value:
        return f"DN {call.dn} of switch {switch_name} changes type"
    target = config.port_dn(ivr, port)
    if target is None or target[0].name != switch_name or target[1].number != call.dn:
        where = f"DN {target[1].number} of switch {target[0].name}" if target else "no DN"
        return f"port {call.port} of IVR {call.ivr} moves from DN {call.dn} to {where}"
    if config.tserver_for_switch(switch_name) is None:
        return f"switch {switch_name} loses its T-Server"
    if call.conn_id is not None and call.route_dn is not None:
        waiting = call.switch.call(call.conn_id)
        if waiting is not None and waiting.routing_point == call.route_dn:
            rp = config.find_dn(switch_name, call.route_dn)
            if rp is None or rp[1].type is not DnType.ROUTING_POINT:
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
