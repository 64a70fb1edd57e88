"""A premise call's PBX side as part of its store record, and back (HA, issue 25; MODES-AND-HA
§3.5 "premise call refs", §1.7 G27).

The switch view's call record (``sw:<switch>:call:<ConnID>``, :mod:`ivr_server.switch.persist`)
holds the T-Library side of a call: ConnID, parties, user data. A premise switch also holds the
PBX side (:class:`~ivr_server.switch.premise.core.PremiseCall`): the PBX's callID the ConnID was
given for, where the call is at our monitored DNs, the other devices in it. Without them a node
taking over a Behind call would not recognise the PBX's later events about it (another callID,
another ConnID) nor be able to clear its connection. :class:`PremiseCallState` is that side, kept
in the view's record (its ``premise`` field) so that one key, marked dirty at the same points,
carries both; the service reaches it through the switch's duck-typed hooks
:meth:`~ivr_server.switch.premise.switch.PremiseSwitch.call_state` and ``restore_call_state``
(nothing above ``switch/`` imports this module).

Carried: the callID, TSCallId, the call's state at each DN of ours (alerting, connected, held,
dialing), its other devices, ANI/DNIS/queue/OtherDN, a conference's added parties, the number a
placed call dialled, and the user data a transfer of ours brought. Not carried (they die with
the node that sent them): a call-control request in progress (``Flow``) and the CSTA requests
waiting for the PBX, the calls a single-step transfer is handing to another DN of ours
(``handed``), the monitors (the new leader's session starts its own for every registered DN).
After a takeover the link comes up on the new leader and resyncs each DN from its snapshot
(:func:`~ivr_server.switch.premise.calls.resync_dn`) against these restored tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from ivr_server.switch.persist import kv_in, kv_out
from ivr_server.switch.premise.core import LOG, PremiseCall

if TYPE_CHECKING:
    from ivr_server.switch.premise.core import PremiseCore

__all__ = ["PremiseCallState", "premise_state", "restore_premise"]


class PremiseCallState(msgspec.Struct, array_like=True, gc=False):
    """The PBX side of one call (the module docstring); a field of ``sw:<switch>:call:``."""

    premise_id: str
    """The PBX's callID (``?<dn>#<n>``: a key made up for a call the PBX named no callID)."""
    call_id: int
    at: dict[str, str]
    """Our DN → the call's local connection state there."""
    devices: list[str]
    ani: str | None
    dnis: str | None
    this_queue: str | None
    other_dn: str | None
    added: list[str]
    dialed: str | None
    carried: Any
    """User data a transfer of ours brought (a key/value list, :func:`kv_out`)."""


_CONVERT: Final = msgspec.convert


def premise_state(sw: PremiseCore, conn_id: str) -> PremiseCallState | None:
    """The PBX side of the call of ``conn_id``, or ``None`` if the PBX reported none for it."""
    call = sw.call_of(conn_id)
    if call is None:
        return None
    return PremiseCallState(
        premise_id=call.premise_id,
        call_id=call.call_id,
        at=dict(call.at),
        devices=sorted(call.devices),
        ani=call.ani,
        dnis=call.dnis,
        this_queue=call.this_queue,
        other_dn=call.other_dn,
        added=sorted(call.added),
        dialed=call.dialed,
        carried=kv_out(call.carried),
    )


def restore_premise(sw: PremiseCore, conn_id: str, raw: Any) -> bool:
    """Put the PBX side of ``conn_id`` (``raw``: the record's ``premise`` field as decoded)
    back into the switch's tables; ``False`` (logged) when the callID or the ConnID is already
    another call's here, or the field is not understood: the switch's own call goes on and the
    snapshot resync decides."""
    try:
        state = raw if isinstance(raw, PremiseCallState) else _CONVERT(raw, PremiseCallState)
    except msgspec.ValidationError as exc:
        LOG.warning("switch %s: premise state of call %s not understood: %s", sw.name, conn_id, exc)
        return False
    if state.premise_id in sw.calls or conn_id in sw.by_conn:
        LOG.info(
            "switch %s: premise call %s (ConnID %s) is already here: the stored one left out",
            sw.name,
            state.premise_id,
            conn_id,
        )
        return False
    call = PremiseCall(state.premise_id, conn_id, state.call_id)
    call.at = dict(state.at)
    call.devices = set(state.devices)
    call.ani = state.ani
    call.dnis = state.dnis
    call.this_queue = state.this_queue
    call.other_dn = state.other_dn
    call.added = set(state.added)
    call.dialed = state.dialed
    call.carried = kv_in(state.carried) if state.carried else ()
    sw.calls[state.premise_id] = call
    sw.by_conn[conn_id] = state.premise_id
    if state.premise_id.startswith("?"):  # made-up keys go on after the restored ones
        _, _, number = state.premise_id.rpartition("#")
        if number.isdigit():
            sw.anonymous = max(sw.anonymous, int(number))
    return True
