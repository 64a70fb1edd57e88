"""The In-Front/Behind per-call state machine as a table (PROTOCOL.md §6.1-§6.2).

``TRANSITIONS[(state, input)]`` gives the next state and the name of the action that produces the
outputs of the spec's row; a pair that is not in the table is not allowed in that state and is
answered by :data:`REFUSALS` (default ``BLOCKED_REQ``, PROTOCOL.md §6 general rules) with the
state unchanged. ``None`` as next state means the call is over and forgotten. The table is data:
docs/calls.md is generated from it and a test checks that the two agree.

Side requests (CallInfoReq, user data, statistics, LogMsg) never change the state (§6.4) and are
not inputs here. Call control (transfers, conferences, RetrieveCall, MakeCall: MODES-AND-HA §1.2
B4-B11) has its rows here too (:mod:`ivr_server.calls.control`); a request the state does not
allow is refused ``BLOCKED_REQ`` by name. :data:`BEFORE` as a next state means "back to the state
the call was in when the call-control request came" (``Call.resume``): a refused request restores
the situation (G2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ivr_server.enums import TableEnum

__all__ = [
    "BEFORE",
    "CONNECTED_STATES",
    "REFUSALS",
    "ROUTE_ABORTABLE",
    "TRANSITIONS",
    "CallInput",
    "CallState",
    "Refuse",
    "Resume",
    "Transition",
]


class CallState(TableEnum):
    """Call states (PROTOCOL.md §6.1); transfer/conference states come with Behind mode."""

    DIALING = "DIALING"
    """Outbound (DialOutInit): the IVR dials; ``CallStatus Dialing`` sent, the party has not
    answered yet."""
    AWAIT_RINGING = "AWAIT_RINGING"
    """NewCall accepted; the switch has not reported the call at the port yet."""
    ALERTING = "ALERTING"
    """``CallStatus Ringing`` sent, ``Established`` not yet."""
    STARTED = "STARTED"
    """Connected at the port; nothing in progress."""
    ROUTING = "ROUTING"
    """RouteRequest outstanding: waiting for router instructions (Router Timeout runs)."""
    TREAT_STARTING = "TREAT_STARTING"
    """TreatCall sent; waiting for TreatStatus Started/NotStarted."""
    TREATING = "TREATING"
    """Treatment running."""
    CANCELLING = "CANCELLING"
    """Cancel sent; the RouteResponse is held back until CancelCompleted."""
    ROUTED = "ROUTED"
    """RouteResponse sent."""
    CONNECTED = "CONNECTED"
    """The IVR sent Connected after a RouteResponse."""
    DETACHED = "DETACHED"
    """``CallStatus Released`` sent: the port left the call; waiting for the IVR's EndCall."""
    XFER_PENDING = "XFER_PENDING"
    """OneStepXfer sent to the switch; waiting for the port to leave the call (or a refusal)."""
    CONSULT_PENDING = "CONSULT_PENDING"
    """InitXfer/InitConf sent; the consultation call is not dialling yet."""
    CONSULT_DIALING = "CONSULT_DIALING"
    """The original call is held, the consultation call (``Call.consult_conn_id``) dials."""
    CONSULTING = "CONSULTING"
    """The consulted party answered (or was busy); the original call is held."""
    COMPLETING = "COMPLETING"
    """CompleteXfer/CompleteConf sent; waiting for the switch to join the calls."""
    RETRIEVING = "RETRIEVING"
    """TReconnectCall sent (the IVR's RetrieveCall, or the server restoring the original, G2,
    G5): the consultation is released, the original retrieved."""
    CONF_PENDING = "CONF_PENDING"
    """OneStepConf sent; waiting for the party to join."""
    CONFERENCED = "CONFERENCED"
    """Parties were added to the call; the port is still in it."""
    MAKING = "MAKING"
    """MakeCall: the port's DN calls the destination (``Dialing`` sent or to come); waiting for
    it to answer (``make-call-timeout`` runs)."""
    WAITING = "WAITING"
    """Network mode only (:mod:`ivr_server.calls.network_table`): the call waits at its routing
    DN for the router's instructions (Router Timeout runs). Network calls use ``STARTED``,
    ``TREAT_STARTING``, ``TREATING``, ``CANCELLING``, ``ROUTED`` and ``CONNECTED`` too, with the
    meanings of PROTOCOL.md §6.3."""


class Resume(TableEnum):
    """A next state that depends on the call: :data:`BEFORE`."""

    BEFORE = "(the state before the request)"
    """The state the call was in when its call-control request came (``Call.resume``)."""


class CallInput(TableEnum):
    """What can happen to a call: an IVR message, a switch or router event, a timer."""

    DIALED = "EventDialing"
    ANSWERED = "CallStatus Established (from the IVR)"
    RINGING = "EventRinging"
    ESTABLISHED = "EventEstablished"
    RELEASED = "EventReleased (not ours)"
    ROUTE_REQUEST = "RouteRequest"
    ROUTE_CALL = "router RequestRouteCall"
    APPLY_TREATMENT = "router RequestApplyTreatment"
    ROUTER_TIMEOUT = "Router Timeout"
    TREAT_STARTED = "TreatStatus Started"
    TREAT_NOT_STARTED = "TreatStatus NotStarted"
    TREAT_COMPLETED = "TreatStatus Completed"
    CANCEL_COMPLETED = "CancelCompleted"
    CONNECTED = "Connected"
    FAILURE = "Failure"
    END_CALL = "EndCall"
    CALL_TIMEOUT = "Call Timeout"
    WAIT_RINGING_TIMEOUT = "wait-for-ringing"
    ORPHAN_TIMEOUT = "orphan-call-timeout"
    ONE_STEP_XFER = "OneStepXfer"
    INIT_XFER = "InitXfer"
    INIT_CONF = "InitConf"
    COMPLETE_XFER = "CompleteXfer"
    COMPLETE_CONF = "CompleteConf"
    ONE_STEP_CONF = "OneStepConf"
    RETRIEVE = "RetrieveCall"
    HELD = "EventHeld"
    CONTROL_DIALED = "EventDialing (consultation, emulated transfer, MakeCall)"
    CONSULT_ANSWERED = "EventEstablished (consultation)"
    DEST_BUSY = "EventDestinationBusy"
    CONSULT_RELEASED = "EventReleased (consultation)"
    RETRIEVED = "EventRetrieved"
    PARTY_ADDED = "EventPartyAdded"
    PARTY_DELETED = "EventPartyDeleted"
    LAST_PARTY_LEFT = "EventPartyDeleted (the last added party)"
    XFER_DONE = "EventReleased (transfer done)"
    REFUSED = "EventError (call control)"
    REFUSED_HELD = "EventError (the original still held)"
    MAKE_CALL_TIMEOUT = "make-call-timeout"


@dataclass(frozen=True, slots=True)
class Transition:
    """One row: go to ``next_state`` (``None``: the call ends) after running ``action``."""

    next_state: CallState | Resume | None
    action: str
    """Name of the action: a family of messages' method ``do_<action>``, registered by the
    :class:`~ivr_server.calls.manager.CallManager` (which checks that every name has one)."""


class Refuse(TableEnum):
    """How a request that the state does not allow is answered (PROTOCOL.md §9.4.4)."""

    BLOCKED_REQ = "BLOCKED_REQ"
    """``CallError FailedReq='Unknown' TlibErrCode='BLOCKED_REQ'``."""
    INVALID_REQ = "INVALID_REQ"
    """``CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'`` (W: RouteRequest before the
    call reached the port)."""
    IGNORE = "IGNORE"
    """Nothing is answered (the input is not a request, e.g. a late switch event)."""
    UNSUP_OPER = "UNSUP_OPER"
    """``CallError FailedReq='Unknown' TlibErrCode='UNSUP_OPER'``: a request the call's mode
    does not have (Network: transfers, conferences, MakeCall; MODES-AND-HA G20)."""


_S = CallState
_I = CallInput
T = Transition

BEFORE: Final = Resume.BEFORE
_ALL: Final = tuple(state for state in CallState if state is not CallState.WAITING)
"""The states of the In-Front/Behind table (``WAITING`` is Network mode's only)."""
_CONNECTED_STATES: Final = (_S.STARTED, _S.ROUTED, _S.CONNECTED)
CONNECTED_STATES: Final = frozenset(_CONNECTED_STATES)
"""States of a call connected at its port with nothing in progress, where a routing dialog, a
transfer or a conference may start (PROTOCOL.md §6.2 rows 12, 25, 29, 38, 41)."""
ROUTE_ABORTABLE: Final = (_S.ROUTING, _S.TREAT_STARTING, _S.TREATING, _S.CANCELLING)
"""States with an open routing dialog on a routing point (a tuple: the table's order is fixed)."""

_CONTROL_EVENTS: Final = (
    _I.HELD,
    _I.CONTROL_DIALED,
    _I.CONSULT_ANSWERED,
    _I.DEST_BUSY,
    _I.CONSULT_RELEASED,
    _I.RETRIEVED,
    _I.PARTY_ADDED,
    _I.PARTY_DELETED,
    _I.LAST_PARTY_LEFT,
    _I.XFER_DONE,
    _I.REFUSED,
    _I.REFUSED_HELD,
    _I.MAKE_CALL_TIMEOUT,
)
"""Switch events and timers of call control: late ones, in a state that no longer waits for
them, are ignored."""

_ROWS: dict[tuple[CallState, CallInput], Transition] = {
    # call start (rows 1-6; 2-4 are Behind's wait for the premise switch)
    (_S.AWAIT_RINGING, _I.RINGING): T(_S.ALERTING, "ringing"),
    (_S.AWAIT_RINGING, _I.WAIT_RINGING_TIMEOUT): T(None, "end_timeout"),
    (_S.ALERTING, _I.ESTABLISHED): T(_S.STARTED, "established"),
    # outbound (PROTOCOL.md §3.10.5, §6.5.7)
    (_S.DIALING, _I.DIALED): T(_S.DIALING, "dialing"),
    (_S.DIALING, _I.ANSWERED): T(_S.AWAIT_RINGING, "answered"),
    (_S.DIALING, _I.FAILURE): T(None, "dial_failed"),
    # routing and treatment (rows 12-24)
    **{(state, _I.ROUTE_REQUEST): T(_S.ROUTING, "route_request") for state in _CONNECTED_STATES},
    (_S.ROUTING, _I.ROUTE_CALL): T(_S.ROUTED, "route_response"),
    (_S.ROUTING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.ROUTING, _I.ROUTER_TIMEOUT): T(_S.ROUTED, "route_default"),
    (_S.TREAT_STARTING, _I.TREAT_STARTED): T(_S.TREATING, "treatment_started"),
    (_S.TREAT_STARTING, _I.TREAT_NOT_STARTED): T(_S.ROUTING, "treatment_not_started"),
    (_S.TREATING, _I.TREAT_COMPLETED): T(_S.ROUTING, "treatment_completed"),
    (_S.TREAT_STARTING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.TREATING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.TREATING, _I.ROUTE_CALL): T(_S.CANCELLING, "cancel"),
    (_S.TREAT_STARTING, _I.ROUTE_CALL): T(_S.CANCELLING, "cancel"),
    (_S.CANCELLING, _I.CANCEL_COMPLETED): T(_S.ROUTED, "held_route_response"),
    (_S.CANCELLING, _I.TREAT_COMPLETED): T(_S.ROUTED, "held_route_response"),
    (_S.ROUTED, _I.CONNECTED): T(_S.CONNECTED, "nothing"),
    (_S.ROUTED, _I.FAILURE): T(_S.ROUTING, "route_failed"),
    # Connected while a routing dialog is open: route abort (PROTOCOL.md §3.3.4, D)
    **{(state, _I.CONNECTED): T(_S.STARTED, "route_abort") for state in ROUTE_ABORTABLE},
    # call control (rows 25-48; MODES-AND-HA §1.2 B4-B11, G2-G11): calls.control
    **{
        (state, request): T(nxt, action)
        for state in (*_CONNECTED_STATES, _S.CONFERENCED)
        for request, nxt, action in (
            (_I.ONE_STEP_XFER, _S.XFER_PENDING, "one_step_xfer"),
            (_I.ONE_STEP_CONF, _S.CONF_PENDING, "one_step_conf"),
        )
    },
    **{
        (state, request): T(_S.CONSULT_PENDING, "init_consult")
        for state in _CONNECTED_STATES
        for request in (_I.INIT_XFER, _I.INIT_CONF)
    },
    (_S.XFER_PENDING, _I.HELD): T(_S.XFER_PENDING, "held"),
    (_S.XFER_PENDING, _I.CONTROL_DIALED): T(_S.XFER_PENDING, "dialing"),
    (_S.XFER_PENDING, _I.CONSULT_ANSWERED): T(_S.XFER_PENDING, "established_far"),
    (_S.XFER_PENDING, _I.RETRIEVED): T(_S.XFER_PENDING, "retrieved"),
    (_S.XFER_PENDING, _I.XFER_DONE): T(_S.DETACHED, "xfer_complete"),
    (_S.XFER_PENDING, _I.REFUSED): T(BEFORE, "refused"),
    (_S.XFER_PENDING, _I.REFUSED_HELD): T(_S.RETRIEVING, "refused_reconnect"),
    (_S.CONSULT_PENDING, _I.HELD): T(_S.CONSULT_PENDING, "held"),
    (_S.CONSULT_PENDING, _I.RETRIEVED): T(_S.CONSULT_PENDING, "retrieved"),
    (_S.CONSULT_PENDING, _I.CONTROL_DIALED): T(_S.CONSULT_DIALING, "dialing"),
    (_S.CONSULT_PENDING, _I.REFUSED): T(BEFORE, "refused"),
    (_S.CONSULT_PENDING, _I.REFUSED_HELD): T(_S.RETRIEVING, "refused_reconnect"),
    (_S.CONSULT_DIALING, _I.CONSULT_ANSWERED): T(_S.CONSULTING, "established_far"),
    (_S.CONSULT_DIALING, _I.DEST_BUSY): T(_S.CONSULTING, "busy"),
    **{
        (state, request): T(nxt, action)
        for state in (_S.CONSULT_DIALING, _S.CONSULTING)
        for request, nxt, action in (
            (_I.COMPLETE_XFER, _S.COMPLETING, "complete"),
            (_I.COMPLETE_CONF, _S.COMPLETING, "complete"),
            (_I.RETRIEVE, _S.RETRIEVING, "retrieve"),
            (_I.CONSULT_RELEASED, _S.RETRIEVING, "reconnect"),
        )
    },
    (_S.COMPLETING, _I.CONSULT_RELEASED): T(_S.COMPLETING, "nothing"),
    (_S.COMPLETING, _I.XFER_DONE): T(_S.DETACHED, "xfer_complete"),
    (_S.COMPLETING, _I.RETRIEVED): T(_S.COMPLETING, "retrieved"),
    (_S.COMPLETING, _I.PARTY_ADDED): T(_S.CONFERENCED, "party_added"),
    (_S.COMPLETING, _I.REFUSED): T(_S.RETRIEVING, "refused_reconnect"),
    (_S.COMPLETING, _I.REFUSED_HELD): T(_S.RETRIEVING, "refused_reconnect"),
    (_S.RETRIEVING, _I.CONSULT_RELEASED): T(_S.RETRIEVING, "nothing"),
    (_S.RETRIEVING, _I.RETRIEVED): T(BEFORE, "retrieved"),
    (_S.RETRIEVING, _I.REFUSED): T(_S.CONSULTING, "refused"),
    (_S.RETRIEVING, _I.REFUSED_HELD): T(_S.CONSULTING, "refused"),
    (_S.CONF_PENDING, _I.PARTY_ADDED): T(_S.CONFERENCED, "party_added"),
    (_S.CONF_PENDING, _I.REFUSED): T(BEFORE, "refused"),
    (_S.CONFERENCED, _I.PARTY_ADDED): T(_S.CONFERENCED, "party_added"),
    (_S.CONFERENCED, _I.PARTY_DELETED): T(_S.CONFERENCED, "party_deleted"),
    (_S.CONFERENCED, _I.LAST_PARTY_LEFT): T(_S.STARTED, "party_deleted"),
    (_S.MAKING, _I.CONTROL_DIALED): T(_S.MAKING, "dialing"),
    (_S.MAKING, _I.ESTABLISHED): T(_S.STARTED, "made"),
    (_S.MAKING, _I.DEST_BUSY): T(_S.MAKING, "busy"),
    (_S.MAKING, _I.REFUSED): T(None, "make_call_refused"),
    (_S.MAKING, _I.MAKE_CALL_TIMEOUT): T(None, "make_call_no_answer"),
    # end of call (rows 49-52)
    **{(state, _I.END_CALL): T(None, "end_call") for state in _ALL},
    **{
        (state, _I.RELEASED): T(_S.DETACHED, "released")
        for state in _ALL
        if state is not _S.DETACHED
    },
    **{(state, _I.CALL_TIMEOUT): T(None, "end_timeout") for state in _ALL},
    **{(state, _I.ORPHAN_TIMEOUT): T(None, "abandon") for state in _ALL},
}

TRANSITIONS: Final[dict[tuple[CallState, CallInput], Transition]] = _ROWS
"""(state, input) -> transition; every pair not listed is refused per :data:`REFUSALS`."""

REFUSALS: Final[dict[tuple[CallState, CallInput], Refuse]] = {
    **{(_S.AWAIT_RINGING, _I.ROUTE_REQUEST): Refuse.INVALID_REQ},
    **{(_S.ALERTING, _I.ROUTE_REQUEST): Refuse.INVALID_REQ},
    **{
        (state, event): Refuse.IGNORE
        for state in _ALL
        for event in (
            _I.DIALED,
            _I.ANSWERED,
            _I.RINGING,
            _I.ESTABLISHED,
            _I.RELEASED,
            _I.ROUTE_CALL,
            _I.APPLY_TREATMENT,
            _I.ROUTER_TIMEOUT,
            _I.WAIT_RINGING_TIMEOUT,
            *_CONTROL_EVENTS,
        )
        if (state, event) not in _ROWS
    },
}
"""How a refused (state, input) pair is answered; absent pairs get ``BLOCKED_REQ``."""


def markdown_table(
    table: Mapping[tuple[CallState, CallInput], Transition] = TRANSITIONS,
) -> str:
    """A transition table (this one by default) as the Markdown rows of docs/calls.md (a test
    keeps them equal)."""
    lines = ["| State | Input | Action | Next state |", "|---|---|---|---|"]
    for (state, event), step in table.items():
        nxt = step.next_state.value if step.next_state is not None else "(call ends)"
        lines.append(f"| `{state.value}` | {event.value} | `{step.action}` | {nxt} |")
    return "\n".join(lines) + "\n"
