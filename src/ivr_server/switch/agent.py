"""The agent state machine of one DN, as data (PROTOCOL.md §3.2, §10.2; STYLE.md §2.2).

Theory of operation
-------------------
Every DN that can hold an agent (an extension or a voice treatment port) is in one
:class:`AgentState`. An agent request is first turned into an :class:`AgentInput` — the request's
T-Library name, except that TAgentLogin splits in two because its work mode decides where the
login ends (``AutoIn``/``ManualIn`` → Ready, anything else → NotReady; the guide's example shows
NotReady after a login without work mode, XMLG p.132). ``TRANSITIONS[(state, input)]`` then gives
the next state and the event types to publish, in order, all with the request's ReferenceID. A
missing pair *is* the illegal-request check: the switch answers EventError with
:data:`~ivr_server.switch.errors.AGENT_WRONG_STATE` and changes nothing.

``LOGGED_IN`` is not a state here: T-Library reports it (EventAgentLogin) but a login always ends in
Ready or NotReady, so both events are emitted by the same transition.

This module holds no agent data and performs nothing; the virtual switch applies the table
(:mod:`ivr_server.switch.virtual.agents`). docs/switch.md prints the table (kept in sync by a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ivr_server.enums import TableEnum
from ivr_server.switch.events import (
    AgentStatus,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    SwitchEvent,
    WorkMode,
)
from ivr_server.switch.requests import (
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
)

__all__ = [
    "LOGIN_INPUT",
    "READY_WORK_MODES",
    "REQUEST_INPUTS",
    "TRANSITIONS",
    "AgentInput",
    "AgentState",
    "AgentTransition",
    "agent_status",
]


class AgentState(TableEnum):
    """State of the agent on one DN."""

    LOGGED_OUT = "LoggedOut"
    READY = "Ready"
    NOT_READY = "NotReady"


class AgentInput(TableEnum):
    """What an agent request asks of the state machine (its value is the docs' spelling)."""

    QUERY = "TQueryAddress"
    LOGIN_READY = "TAgentLogin (AutoIn/ManualIn)"
    LOGIN_NOT_READY = "TAgentLogin (other WorkMode)"
    LOGOUT = "TAgentLogout"
    SET_READY = "TAgentSetReady"
    SET_NOT_READY = "TAgentSetNotReady"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTransition:
    """One row of the agent table: where the DN goes and what it publishes on the way."""

    next_state: AgentState
    """The DN's agent state after the request."""
    emits: tuple[type[SwitchEvent], ...]
    """Event types published, in this order, each with the request's ReferenceID."""


_S = AgentState
_I = AgentInput

TRANSITIONS: Final[Mapping[tuple[AgentState, AgentInput], AgentTransition]] = {
    # A query is answered in every state and changes nothing.
    (_S.LOGGED_OUT, _I.QUERY): AgentTransition(next_state=_S.LOGGED_OUT, emits=(EventAddressInfo,)),
    (_S.READY, _I.QUERY): AgentTransition(next_state=_S.READY, emits=(EventAddressInfo,)),
    (_S.NOT_READY, _I.QUERY): AgentTransition(next_state=_S.NOT_READY, emits=(EventAddressInfo,)),
    # Login only from LoggedOut; it always ends in Ready or NotReady.
    (_S.LOGGED_OUT, _I.LOGIN_READY): AgentTransition(
        next_state=_S.READY, emits=(EventAgentLogin, EventAgentReady)
    ),
    (_S.LOGGED_OUT, _I.LOGIN_NOT_READY): AgentTransition(
        next_state=_S.NOT_READY, emits=(EventAgentLogin, EventAgentNotReady)
    ),
    # Logout, Ready and NotReady only when logged in; Ready/NotReady also re-enter their own state
    # (the event is re-emitted and the work mode updated).
    (_S.READY, _I.LOGOUT): AgentTransition(next_state=_S.LOGGED_OUT, emits=(EventAgentLogout,)),
    (_S.NOT_READY, _I.LOGOUT): AgentTransition(next_state=_S.LOGGED_OUT, emits=(EventAgentLogout,)),
    (_S.READY, _I.SET_READY): AgentTransition(next_state=_S.READY, emits=(EventAgentReady,)),
    (_S.NOT_READY, _I.SET_READY): AgentTransition(next_state=_S.READY, emits=(EventAgentReady,)),
    (_S.READY, _I.SET_NOT_READY): AgentTransition(
        next_state=_S.NOT_READY, emits=(EventAgentNotReady,)
    ),
    (_S.NOT_READY, _I.SET_NOT_READY): AgentTransition(
        next_state=_S.NOT_READY, emits=(EventAgentNotReady,)
    ),
}
"""(state, input) → transition. A missing pair means "the agent is in the wrong state"."""

LOGIN_INPUT: Final[Mapping[WorkMode, AgentInput]] = {
    WorkMode.UNKNOWN: AgentInput.LOGIN_NOT_READY,
    WorkMode.AUTO_IN: AgentInput.LOGIN_READY,
    WorkMode.MANUAL_IN: AgentInput.LOGIN_READY,
    WorkMode.AFTER_CALL_WORK: AgentInput.LOGIN_NOT_READY,
    WorkMode.WALK_AWAY: AgentInput.LOGIN_NOT_READY,
}
"""TAgentLogin's work mode → the input it is (the switch's ``login_ready`` choice)."""

REQUEST_INPUTS: Final[Mapping[type[SwitchRequest], tuple[AgentInput, ...]]] = {
    TQueryAddress: (AgentInput.QUERY,),
    TAgentLogin: (AgentInput.LOGIN_READY, AgentInput.LOGIN_NOT_READY),
    TAgentLogout: (AgentInput.LOGOUT,),
    TAgentSetReady: (AgentInput.SET_READY,),
    TAgentSetNotReady: (AgentInput.SET_NOT_READY,),
}
"""Every agent request type and the inputs it can become."""

READY_WORK_MODES: Final = frozenset({WorkMode.UNKNOWN, WorkMode.AUTO_IN, WorkMode.MANUAL_IN})
"""Work modes TAgentSetReady accepts (the wire values of AgentReady, PROTOCOL.md §3.2.5)."""

_STATE_STATUS: Final[Mapping[AgentState, AgentStatus]] = {
    AgentState.LOGGED_OUT: AgentStatus.LOGGED_OUT,
    AgentState.READY: AgentStatus.READY,
    AgentState.NOT_READY: AgentStatus.NOT_READY,
}
_NOT_READY_STATUS: Final[Mapping[WorkMode, AgentStatus]] = {
    WorkMode.AFTER_CALL_WORK: AgentStatus.ACW,
    WorkMode.WALK_AWAY: AgentStatus.WALK_AWAY,
}


def agent_status(state: AgentState, work_mode: WorkMode) -> AgentStatus:
    """The EventAddressInfo ``AgentStatus`` for a state and work mode (PROTOCOL.md §3.2.1)."""
    if state is AgentState.NOT_READY:
        return _NOT_READY_STATUS.get(work_mode, AgentStatus.NOT_READY)
    return _STATE_STATUS[state]
