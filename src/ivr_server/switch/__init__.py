"""The CTI side, sans-IO: the virtual switch, its DNs and agents, T-Library-style requests and events.

See docs/switch.md. This package imports only the standard library and :mod:`ivr_server.errors`;
it is configured by plain arguments, never by the config package.
"""

from __future__ import annotations

from ivr_server.switch.agent import (
    LOGIN_INPUT,
    READY_WORK_MODES,
    REQUEST_INPUTS,
    TRANSITIONS,
    AgentInput,
    AgentState,
    AgentTransition,
    agent_status,
)
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    AgentStatus,
    DnType,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
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
    TRegisterAddress,
    TUnregisterAddress,
)
from ivr_server.switch.virtual import AGENT_DN_TYPES, AgentSnapshot, DnSnapshot, VirtualSwitch

__all__ = [
    "AGENT_DN_TYPES",
    "AGENT_WRONG_STATE",
    "LOGIN_INPUT",
    "READY_WORK_MODES",
    "REQUEST_INPUTS",
    "TRANSITIONS",
    "AgentInput",
    "AgentSnapshot",
    "AgentState",
    "AgentStatus",
    "AgentTransition",
    "DnSnapshot",
    "DnType",
    "EventAddressInfo",
    "EventAgentLogin",
    "EventAgentLogout",
    "EventAgentNotReady",
    "EventAgentReady",
    "EventDNBackInService",
    "EventDNOutOfService",
    "EventError",
    "EventLinkConnected",
    "EventLinkDisconnected",
    "EventRegistered",
    "EventUnregistered",
    "SwitchEvent",
    "SwitchRequest",
    "TAgentLogin",
    "TAgentLogout",
    "TAgentSetNotReady",
    "TAgentSetReady",
    "TErrorCode",
    "TQueryAddress",
    "TRegisterAddress",
    "TUnregisterAddress",
    "VirtualSwitch",
    "WorkMode",
    "agent_status",
]
