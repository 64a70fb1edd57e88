"""Calls of IVR ports, sans-IO: per-call state machines as tables, their timers, and every error
answer of the server (:mod:`ivr_server.calls.replies`). See docs/calls.md."""

from __future__ import annotations

from ivr_server.calls.machine import REFUSALS, TRANSITIONS, CallInput, CallState, Refuse, Transition
from ivr_server.calls.manager import Call, CallManager, CallSettings, PortTarget
from ivr_server.timers import DeadlineQueue

__all__ = [
    "REFUSALS",
    "TRANSITIONS",
    "Call",
    "CallInput",
    "CallManager",
    "CallSettings",
    "CallState",
    "DeadlineQueue",
    "PortTarget",
    "Refuse",
    "Transition",
]
