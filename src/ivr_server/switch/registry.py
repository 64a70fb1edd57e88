"""Builds a switch from plain arguments: the one place that knows which kinds of switch exist.

The service asks for a switch by kind (``virtual``: the In-Front virtual switch, the server's own
network and PBX; ``premise-csta``: a premise PBX watched over CSTA XML, Behind mode, which also
needs its link's :class:`~ivr_server.switch.premise.PremiseSettings`) and gets a
:class:`~ivr_server.switch.protocol.Switch`; nothing else outside ``switch/`` imports an
implementation (an import-linter contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ivr_server.errors import LocalProtocolError
from ivr_server.switch.events import DnType
from ivr_server.switch.premise import PremiseSettings, PremiseSwitch
from ivr_server.switch.protocol import Switch
from ivr_server.switch.virtual import VirtualSwitch

__all__ = ["SWITCH_KINDS", "PremiseSettings", "build_switch"]

SWITCH_KINDS: Final = frozenset({"virtual", "premise-csta"})
"""The kinds :func:`build_switch` can build."""


def build_switch(
    kind: str,
    name: str,
    tserver: str,
    dns: Iterable[tuple[str, DnType]],
    *,
    first_conn_id: int = 1,
    first_call_id: int = 1,
    premise: PremiseSettings | None = None,
) -> Switch:
    """A new switch of ``kind`` named ``name``, reporting the link of T-Server ``tserver``, with
    the DNs ``dns`` (number, type) in configuration order, registered and in service; its link is
    down until a TOpenLink. ConnIDs and CallIDs count up from ``first_conn_id`` and
    ``first_call_id``. A ``premise-csta`` switch needs ``premise``, its link's settings. An
    unknown kind, or a premise switch without settings, is our caller's bug
    (:class:`LocalProtocolError`)."""
    if kind == "virtual":
        return VirtualSwitch(
            name, tserver, dns, first_conn_id=first_conn_id, first_call_id=first_call_id
        )
    if kind == "premise-csta":
        if premise is None:
            raise LocalProtocolError(f"premise switch {name!r} needs its link's settings")
        return PremiseSwitch(
            name,
            tserver,
            dns,
            premise,
            first_conn_id=first_conn_id,
            first_call_id=first_call_id,
        )
    raise LocalProtocolError(
        f"no switch of kind {kind!r} (known: {', '.join(sorted(SWITCH_KINDS))})"
    )
