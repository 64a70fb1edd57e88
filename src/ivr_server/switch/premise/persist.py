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
placed call dialled, the user data a transfer of ours brought, the DNs where a TReleaseCall was
clearing it (cleared again after the resync when the PBX still shows the call there: the old node
may have died before its ClearConnection left), and a consultation or MakeCall
the PBX took that still rings (:class:`FlowState`, on the call it places: its answer, busy or
failure is reported on the new node, and the original call stays held by it). Not carried (they
die with the node that sent them): the other call-control requests in progress (waiting for the
PBX's answer, emulated single-step transfers) and the CSTA requests waiting for the PBX, the
calls a single-step transfer is handing to another DN of ours (``handed``), the monitors (the new
leader's session starts its own for every registered DN).
After a takeover the link comes up on the new leader and resyncs each DN from its snapshot
(:func:`~ivr_server.switch.premise.calls.resync_dn`) against these restored tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from ivr_server.switch import requests as rq
from ivr_server.switch.persist import kv_in, kv_out
from ivr_server.switch.premise.core import LOG, Flow, PremiseCall

if TYPE_CHECKING:
    from ivr_server.switch.premise.core import PremiseCore

__all__ = ["FlowState", "PremiseCallState", "premise_state", "restore_premise"]


_PLACING: Final = frozenset({rq.TMakeCall, rq.TInitiateTransfer, rq.TInitiateConference})
"""The requests whose call, once dialled, is carried with its flow."""


class FlowState(msgspec.Struct, array_like=True, gc=False):
    """A consultation or MakeCall the PBX took (EventDialing published) whose new call still
    rings: what :mod:`~ivr_server.switch.premise.placed` needs to report its outcome."""

    request: str
    """``TMakeCall``, ``TInitiateTransfer`` or ``TInitiateConference``."""
    reference_id: int
    dn: str
    dest: str
    orig: str | None
    """The ConnID of the call held for the consultation (``None``: a MakeCall)."""
    busy: bool


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
    flow: FlowState | None = None
    """The request that placed this call, while its far party has not answered."""
    clearing: dict[str, int] = {}
    """Our DN → the ReferenceID of a TReleaseCall clearing the call there that the PBX had not
    confirmed: the node taking over clears it again after its resync if the PBX still shows
    the call there (the old node may have died before its ClearConnection left)."""


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
        flow=_flow_state(call),
        clearing={dn: ref for (pid, dn), ref in sw.clearing.items() if pid == call.premise_id}
        if sw.clearing
        else {},
    )


def _flow_state(call: PremiseCall) -> FlowState | None:
    """The flow of ``call`` when it is the dialled, non-emulated call of a request that places
    one (the only flows carried: the module docstring)."""
    flow = call.flow
    if flow is None or flow.new is not call or not flow.dialed or flow.emulate is not None:
        return None
    req = flow.req
    if type(req) not in _PLACING:
        return None
    orig = flow.orig
    return FlowState(
        request=req.name,
        reference_id=req.reference_id,
        dn=flow.dn,
        dest=flow.dest,
        orig=orig.conn_id if orig is not None else None,
        busy=flow.busy,
    )


def _restore_flow(sw: PremiseCore, call: PremiseCall, state: FlowState) -> None:
    """Rebuild the flow of a restored placed call; its original call (restored before or after
    it: records come in any order) points to it too."""
    req: rq.TMakeCall | rq.TInitiateTransfer
    if state.request == "TMakeCall":
        req = rq.TMakeCall(reference_id=state.reference_id, dn=state.dn, dest=state.dest)
    elif state.request == "TInitiateConference":
        req = rq.TInitiateConference(
            reference_id=state.reference_id, conn_id=state.orig or "", dn=state.dn, dest=state.dest
        )
    elif state.request == "TInitiateTransfer":
        req = rq.TInitiateTransfer(
            reference_id=state.reference_id, conn_id=state.orig or "", dn=state.dn, dest=state.dest
        )
    else:
        return
    flow = Flow(req, state.dn, state.dest, None)
    flow.new = call
    flow.dialed = True
    flow.busy = state.busy
    call.flow = flow
    if state.orig is not None:
        orig = sw.call_of(state.orig)
        if orig is not None:
            flow.orig = orig
            orig.flow = flow
        else:
            sw.unlinked[state.orig] = flow


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
    if state.flow is not None:
        _restore_flow(sw, call, state.flow)
    for dn, ref in state.clearing.items():
        if dn in call.at:  # its EventReleased carries the request's ReferenceID, as it would
            sw.clearing[(state.premise_id, dn)] = ref
            sw.reclear.append((state.premise_id, dn, ref))
    if sw.unlinked:
        flow = sw.unlinked.pop(conn_id, None)
        if flow is not None:  # the consultation this call is held for was restored first
            flow.orig = call
            call.flow = flow
    if state.premise_id.startswith("?"):  # made-up keys go on after the restored ones
        _, _, number = state.premise_id.rpartition("#")
        if number.isdigit():
            sw.anonymous = max(sw.anonymous, int(number))
    return True
