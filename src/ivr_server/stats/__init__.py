"""The built-in statistics engine: values for PeekStatReq / GetStatReq (PROTOCOL.md §3.9).

* :class:`StatsEngine` computes the configured ``[[statistics]]`` from the virtual switches, the
  switch events it is fed and the calls in progress per IVR; it caches per ``update-frequency``.
* A request yields a :class:`StatValue` (``Success``), a :class:`StatUnavailable`
  (``MiscError``) or ``None`` (``NoSuchStat``); :func:`result_code` names the ``ResultCode`` and
  :func:`format_value` writes ``Result/@Value`` (PROTOCOL.md §9.4.5).
* :class:`WaitTracker` times the waits at routing points (``ExpectedWaitTime``).

docs/statistics.md documents every statistic. Sans-IO: no clock (every call takes ``now``), no
asyncio; this package imports :mod:`ivr_server.config`, :mod:`ivr_server.switch` and the standard
library only.
"""

from __future__ import annotations

from ivr_server.stats.agents import AgentActivity, AgentCounts, agent_activities, count_activities
from ivr_server.stats.engine import StatsEngine
from ivr_server.stats.values import (
    StatResultCode,
    StatUnavailable,
    StatValue,
    format_value,
    result_code,
)
from ivr_server.stats.waits import EWT_MAX_SAMPLES, EWT_WINDOW_S, QUEUE_KEY, PeerWaits, WaitTracker

__all__ = [
    "EWT_MAX_SAMPLES",
    "EWT_WINDOW_S",
    "QUEUE_KEY",
    "AgentActivity",
    "AgentCounts",
    "PeerWaits",
    "StatResultCode",
    "StatUnavailable",
    "StatValue",
    "StatsEngine",
    "WaitTracker",
    "agent_activities",
    "count_activities",
    "format_value",
    "result_code",
]
