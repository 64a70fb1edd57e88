"""The Network-mode per-call state machine as a table (PROTOCOL.md §6.3, MODES-AND-HA §1.3).

A Network call (``Call.network``) runs this table instead of the In-Front/Behind one of
:mod:`ivr_server.calls.machine`; :meth:`~ivr_server.calls.context.CallContext.input` picks it per
call. The rules are the same: ``NETWORK_TRANSITIONS[(state, input)]`` gives the next state and
the action; a pair not in it is answered per :data:`NETWORK_REFUSALS` (default ``BLOCKED_REQ``),
the state unchanged; ``None`` as next state means the call is over. docs/calls.md shows the table
generated from this data (a test keeps the two equal).

States (``call.state.value`` reads as the spec's names): ``STARTED`` (queued at the routing DN,
``CallControlMode='Network'``, no RouteRequest yet), ``WAITING`` (the router owes instructions;
Router Timeout runs), ``TREAT_STARTING``, ``TREATING``, ``CANCELLING``, ``ROUTED`` (a
``RouteResponse`` sent, the IVR's ``Connected`` or ``Failure`` to come), ``CONNECTED``.

A call starts in ``STARTED`` (row N2) or, ``CallControlMode='Genesys'``, in ``WAITING`` (N1):
that is the admission's (:mod:`ivr_server.calls.network`), not a row. Rows N4 (no router) and the
mode procedure are the service's.
"""

from __future__ import annotations

from typing import Final

from ivr_server.calls.machine import CallInput, CallState, Refuse, Transition, markdown_table

__all__ = [
    "NETWORK_REFUSALS",
    "NETWORK_STATES",
    "NETWORK_TRANSITIONS",
    "network_markdown_table",
]

_S = CallState
_I = CallInput
T = Transition

NETWORK_STATES: Final = (
    _S.STARTED,
    _S.WAITING,
    _S.TREAT_STARTING,
    _S.TREATING,
    _S.CANCELLING,
    _S.ROUTED,
    _S.CONNECTED,
)
"""The states of a Network call (PROTOCOL.md §6.3), in the spec's order."""

_ROWS: dict[tuple[CallState, CallInput], Transition] = {
    # N3: the one RouteRequest of a call (RouteDN ignored: routing on the NewCall's DN)
    (_S.STARTED, _I.ROUTE_REQUEST): T(_S.WAITING, "net_route_request"),
    # N5: the router stayed silent
    (_S.WAITING, _I.ROUTER_TIMEOUT): T(None, "net_router_timeout"),
    # N7, N9: the router routes (N9: a connected call, unsolicited RouteResponse)
    (_S.WAITING, _I.ROUTE_CALL): T(_S.ROUTED, "route_response"),
    (_S.CONNECTED, _I.ROUTE_CALL): T(_S.ROUTED, "net_reroute"),
    # N8, N10: the IVR reports the outcome of the route
    (_S.ROUTED, _I.CONNECTED): T(_S.CONNECTED, "net_connected"),
    (_S.ROUTED, _I.FAILURE): T(_S.WAITING, "route_failed"),
    # N11-N17: treatments, and a route during one
    (_S.WAITING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.TREAT_STARTING, _I.TREAT_NOT_STARTED): T(_S.WAITING, "treatment_not_started"),
    (_S.TREAT_STARTING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.TREATING, _I.APPLY_TREATMENT): T(_S.TREAT_STARTING, "treat_call"),
    (_S.TREAT_STARTING, _I.TREAT_STARTED): T(_S.TREATING, "treatment_started"),
    (_S.TREATING, _I.TREAT_COMPLETED): T(_S.WAITING, "treatment_completed"),
    (_S.TREATING, _I.ROUTE_CALL): T(_S.CANCELLING, "cancel"),
    (_S.TREAT_STARTING, _I.ROUTE_CALL): T(_S.CANCELLING, "cancel"),
    (_S.CANCELLING, _I.CANCEL_COMPLETED): T(_S.ROUTED, "held_route_response"),
    (_S.CANCELLING, _I.TREAT_COMPLETED): T(_S.ROUTED, "held_route_response"),
    # N6 and the server's ends (N-l): every state
    **{(state, _I.END_CALL): T(None, "net_end_call") for state in NETWORK_STATES},
    **{(state, _I.RELEASED): T(None, "net_released") for state in NETWORK_STATES},
    **{(state, _I.CALL_TIMEOUT): T(None, "net_end_timeout") for state in NETWORK_STATES},
    **{(state, _I.ORPHAN_TIMEOUT): T(None, "net_abandon") for state in NETWORK_STATES},
}

NETWORK_TRANSITIONS: Final[dict[tuple[CallState, CallInput], Transition]] = _ROWS
"""(state, input) -> transition of a Network call; every pair not listed is refused per
:data:`NETWORK_REFUSALS`."""

_CALL_CONTROL: Final = (
    _I.ONE_STEP_XFER,
    _I.INIT_XFER,
    _I.INIT_CONF,
    _I.COMPLETE_XFER,
    _I.COMPLETE_CONF,
    _I.ONE_STEP_CONF,
    _I.RETRIEVE,
)
"""Behind mode's requests: not in Network mode (PROTOCOL.md §5.3)."""

_IVR_REQUESTS: Final = frozenset(
    (
        _I.ROUTE_REQUEST,
        _I.TREAT_STARTED,
        _I.TREAT_NOT_STARTED,
        _I.TREAT_COMPLETED,
        _I.CANCEL_COMPLETED,
        _I.CONNECTED,
        _I.FAILURE,
        _I.END_CALL,
        _I.ANSWERED,
    )
).union(_CALL_CONTROL)
"""The IVR's requests (and its CallStatus): refused out of turn, never ignored."""

_EVENTS: Final = tuple(event for event in CallInput if event not in _IVR_REQUESTS)
"""Inputs that are not IVR requests (switch and router events, timers): late ones are
ignored."""

NETWORK_REFUSALS: Final[dict[tuple[CallState, CallInput], Refuse]] = {
    **{
        (state, request): Refuse.UNSUP_OPER for state in NETWORK_STATES for request in _CALL_CONTROL
    },
    **{
        (state, event): Refuse.IGNORE
        for state in NETWORK_STATES
        for event in _EVENTS
        if (state, event) not in _ROWS
    },
}
"""How a refused (state, input) pair of a Network call is answered; absent pairs (a second
RouteRequest, Connected or Failure when no route is outstanding, a TreatStatus or
CancelCompleted out of turn, CallStatus from the IVR) get ``BLOCKED_REQ``."""


def network_markdown_table() -> str:
    """The Network table as the Markdown rows of docs/calls.md (a test keeps them equal)."""
    return markdown_table(NETWORK_TRANSITIONS)
