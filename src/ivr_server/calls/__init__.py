"""Calls of IVR ports, sans-IO: per-call state machines as tables, their timers, and every error
answer of the server (:mod:`ivr_server.calls.replies`). See docs/calls.md.

:class:`CallManager` (``manager.py``) is the door; each family of messages has its own module
(``admission``, ``info``, ``userdata``, ``routing``, ``ending``, ``control`` for transfers,
conferences and MakeCall; ``behind`` meets Behind calls
with the premise switch's calls at their ports) around the shared state of
``context.py``; ``call.py`` holds the call record, ``timers.py`` its timers, ``machine.py`` the
table."""

from __future__ import annotations

from ivr_server.calls.call import Call, CallSettings, DeferPolicy, PortTarget, call_id_of
from ivr_server.calls.machine import REFUSALS, TRANSITIONS, CallInput, CallState, Refuse, Transition
from ivr_server.calls.manager import CallManager
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
    "DeferPolicy",
    "PortTarget",
    "Refuse",
    "Transition",
    "call_id_of",
]
