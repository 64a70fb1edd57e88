"""The In-Front virtual switch (docs/switch.md), one family of requests per module.

Only :mod:`ivr_server.switch.registry` (and tests) import this package: everything else knows a
switch as a :class:`~ivr_server.switch.protocol.Switch`.
"""

from __future__ import annotations

from ivr_server.switch.virtual.core import AGENT_DN_TYPES
from ivr_server.switch.virtual.switch import VirtualSwitch

__all__ = ["AGENT_DN_TYPES", "VirtualSwitch"]
